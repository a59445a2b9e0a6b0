"""The plugin host: loading order and checks, the batch stages, the fault policy, the
``plugins`` command. Every test builds its own manager from plugins defined in the test."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import textwrap

import msgspec
import pytest

import ikefilter
from ikefilter import app, cli, host
from ikefilter.config import ConfigError, SiteConfig, loads
from ikefilter.host import PluginError

LINE = ("<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1"
        " remoteip=81.2.3.{n} localid=gw.example.net remoteid=peer{n}@example.com")
ENC = msgspec.json.Encoder()


def lines(n: int) -> list[str]:
    return [LINE.format(n=i % 250 + 1) for i in range(n)]


def pipeline(*plugins, config: str = "", **kw):
    return app.build_pipeline(loads(config, "site.toml"), plugins=plugins, entry_points=False,
                              **kw)


def counts_add_up(p) -> bool:
    s = p.stats
    return s.in_ == s.out + s.dropped + s.quarantined


class Recorder:
    """Records each batch hook call: (stage, batch size)."""

    def __init__(self, name="recorder"):
        self.name = name
        self.calls: list[tuple[str, int]] = []

    @ikefilter.hookimpl
    def ikefilter_enrich(self, events):
        self.calls.append(("enrich", len(events)))

    @ikefilter.hookimpl
    def ikefilter_redact(self, events):
        self.calls.append(("redact", len(events)))

    @ikefilter.hookimpl
    def ikefilter_severity(self, events):
        self.calls.append(("severity", len(events)))


# -- loading ---------------------------------------------------------------------------------


def test_builtins_are_plugins_and_nothing_loads_at_import():
    pm = host.build_manager(entry_points=False)
    names = [name for name, _ in pm.list_name_plugin()]
    assert names == ["redact", "severity", "tunnels"]
    assert host.build_manager(entry_points=False) is not pm
    assert host.build_manager(entry_points=False).get_plugin("redact") is not pm.get_plugin(
        "redact")


def test_stages_run_once_per_batch_in_fixed_order():
    rec = Recorder()
    p = pipeline(rec)
    p.process_lines(lines(1000))
    p.process_lines(lines(10))
    assert rec.calls == [("enrich", 1000), ("redact", 1000), ("severity", 1000),
                         ("enrich", 10), ("redact", 10), ("severity", 10)]


def test_load_by_file_module_and_attribute(tmp_path, monkeypatch):
    plugin_file = tmp_path / "local_tags.py"
    plugin_file.write_text(textwrap.dedent("""
        import ikefilter

        @ikefilter.hookimpl
        def ikefilter_enrich(events):
            for event in events:
                event.tag("from-file")
    """))
    pkg = tmp_path / "sitepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import ikefilter

        class Plugin:
            @ikefilter.hookimpl
            def ikefilter_enrich(self, events):
                for event in events:
                    event.tag("from-object")

        plugin = Plugin()

        @ikefilter.hookimpl
        def ikefilter_severity(events):
            for event in events:
                event.tag("from-module")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    p = app.build_pipeline(SiteConfig(), entry_points=False,
                           load=[str(plugin_file), "sitepkg", "sitepkg:plugin"])
    names = [name for name, _ in p.site.pm.list_name_plugin()]
    assert names == ["redact", "severity", "tunnels", "local_tags", "sitepkg", "sitepkg:plugin"]
    [event] = p.process_lines(lines(1))
    assert {"from-file", "from-object", "from-module"} <= set(event.tags)


def test_config_load_list_and_disabling_by_name(tmp_path):
    plugin_file = tmp_path / "tagger.py"
    plugin_file.write_text("import ikefilter\n\n@ikefilter.hookimpl\n"
                           "def ikefilter_enrich(events):\n"
                           "    for e in events:\n        e.tag('tagged')\n")
    text = f'[ikefilter]\nplugins = ["{plugin_file}"]\n'
    [event] = pipeline(config=text).process_lines(lines(1))
    assert "tagged" in event.tags
    [event] = pipeline(config=text, disable=["tagger"]).process_lines(lines(1))
    assert "tagged" not in event.tags
    text += 'disable_plugins = ["tagger", "severity"]\n'
    p = pipeline(config=text)
    assert p.site.pm.get_plugin("severity") is None
    assert "tagged" not in p.process_lines(lines(1))[0].tags


def test_disabling_an_unknown_plugin_is_an_error():
    with pytest.raises(PluginError,
                       match="cannot disable 'nope'.*known: redact, severity, tunnels"):
        host.build_manager(disable=["nope"], entry_points=False)


def test_a_misspelt_hook_is_a_startup_error():
    class Typo:
        @ikefilter.hookimpl
        def ikefilter_enrichment(self, events):
            pass

    with pytest.raises(PluginError) as error:
        pipeline(Typo())
    # one line that names the plugin once, by name, and says what the hooks are
    assert str(error.value).startswith("plugin 'Typo': unknown hook 'ikefilter_enrichment' "
                                       "(the hooks are ikefilter_config_tables, ")
    assert "object at" not in str(error.value) and "\n" not in str(error.value)


def test_a_plugin_loaded_twice_under_one_name_is_one_line(tmp_path):
    """As a file and as an installed package, say: not pluggy's dictionary of plugins."""
    (tmp_path / "twice.py").write_text("import ikefilter\n\n\n@ikefilter.hookimpl\n"
                                       "def ikefilter_enrich(events):\n    return None\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "twice.py").write_text((tmp_path / "twice.py").read_text())
    with pytest.raises(PluginError) as error:
        host.build_manager([str(tmp_path / "twice.py"), str(tmp_path / "sub" / "twice.py")],
                           entry_points=False)
    text = str(error.value)
    assert text == (f"plugin 'twice' ({tmp_path / 'sub' / 'twice.py'}): a plugin of this name "
                    f"is already loaded (ikefilter_site_plugin_twice ({tmp_path / 'twice.py'}))"
                    ": load it one way only")


def test_an_unmarked_hook_function_is_a_startup_error():
    class Unmarked:
        def ikefilter_enrich(self, events):
            pass

    with pytest.raises(PluginError, match="ikefilter_enrich is not a hook implementation"):
        pipeline(Unmarked())


def test_a_wrong_argument_name_is_a_startup_error():
    class BadArgs:
        @ikefilter.hookimpl
        def ikefilter_enrich(self, batch):
            pass

    with pytest.raises(PluginError, match="batch"):
        pipeline(BadArgs())


def test_wrappers_are_refused():
    class Wrapper:
        @ikefilter.hookimpl(wrapper=True)
        def ikefilter_enrich(self, events):
            return (yield)

    with pytest.raises(PluginError, match="cannot be a wrapper"):
        pipeline(Wrapper())


def test_an_implementation_may_take_no_arguments():
    calls = []

    class NoArgs:
        @ikefilter.hookimpl
        def ikefilter_enrich(self):
            calls.append(1)

    pipeline(NoArgs()).process_lines(lines(3))
    assert calls == [1]


def _fake_dist(tmp_path, module_source: str, name="fakesite"):
    (tmp_path / f"ikefilter_{name}.py").write_text(module_source)
    info = tmp_path / f"ikefilter_{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: ikefilter-{name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ikefilter]\n{name} = ikefilter_{name}\n")


def test_entry_points_load_first_and_can_be_disabled(tmp_path, monkeypatch):
    _fake_dist(tmp_path, "import ikefilter\n\n@ikefilter.hookimpl\n"
                         "def ikefilter_enrich(events):\n"
                         "    for e in events:\n        e.tag('entry-point')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = host.build_manager()
    names = [name for name, _ in pm.list_name_plugin()]
    assert names.index("fakesite") < names.index("redact")
    row = next(r for r in host.describe(pm) if r.name == "fakesite")
    assert row.source == "entry point, ikefilter-fakesite 1.2.3"
    assert row.hooks == ["enrich"]
    assert host.build_manager(disable=["fakesite"]).get_plugin("fakesite") is None


# -- the stage contract --------------------------------------------------------------------


def test_drops_by_index_and_by_rule_are_counted_and_hidden_from_later_stages():
    class DropFirst:
        @ikefilter.hookimpl
        def ikefilter_enrich(self, events):
            return [0]

    class DropByRule:
        @ikefilter.hookimpl
        def ikefilter_redact(self, events):
            return {0: "noise", 1: "noise"}

    rec = Recorder()
    p = pipeline(DropFirst(), DropByRule(), rec)
    batch = lines(5)
    out = p.process_lines(batch)
    assert [e is None for e in out] == [True, True, True, False, False]
    assert out[3].source.ip == "81.2.3.4"  # alignment kept
    assert p.stats.dropped == 3 and p.stats.out == 2
    assert p.stats.dropped_by_rule == {"DropFirst": 1, "DropByRule:noise": 2}
    assert rec.calls == [("enrich", 5), ("redact", 4), ("severity", 2)]
    assert counts_add_up(p)


def test_a_bad_return_value_counts_as_a_failure(caplog):
    class Bad:
        @ikefilter.hookimpl
        def ikefilter_enrich(self, events):
            return events  # a list of events, not of indices

    out = pipeline(Bad()).process_lines(lines(2))
    assert all(host.TAG_ENRICH_FAILURE in e.tags for e in out)


def test_enrichment_fails_open_tagged_logged_once_and_others_still_run(caplog):
    class Broken:
        @ikefilter.hookimpl(tryfirst=True)
        def ikefilter_enrich(self, events):
            raise RuntimeError("site table unreachable")

    class Works:
        @ikefilter.hookimpl
        def ikefilter_enrich(self, events):
            for e in events:
                e.labels = {"site": "hq"}

    p = pipeline(Broken(), Works())
    with caplog.at_level(logging.ERROR, logger="ikefilter"):
        for _ in range(3):
            out = p.process_lines(lines(4))
    assert all(e is not None for e in out)
    for e in out:
        assert host.TAG_ENRICH_FAILURE in e.tags
        assert e.labels == {"site": "hq"}
        assert "enrich plugin Broken failed (RuntimeError)" in e.error.message
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "Broken" in errors[0].getMessage()
    assert "site table unreachable" in errors[0].getMessage()
    assert p.stats.out == 12 and p.stats.tagged == 12 and counts_add_up(p)


def test_severity_plugins_fail_open_too():
    class Broken:
        @ikefilter.hookimpl
        def ikefilter_severity(self, events):
            raise KeyError("x")

    out = pipeline(Broken()).process_lines(lines(2))
    assert all(host.TAG_SEVERITY_FAILURE in e.tags for e in out)


class FlakyRedactor:
    """Redacts remote IPs; raises on the batches listed in ``fail_on``."""

    name = "flaky"

    def __init__(self, fail_on=(0,)):
        self.batch = -1
        self.fail_on = set(fail_on)

    @ikefilter.hookimpl
    def ikefilter_redact(self, events):
        self.batch += 1
        for i, e in enumerate(events):
            if self.batch in self.fail_on and i == len(events) // 2:
                raise ValueError(f"cannot redact {e.source.ip}")
            e.source.ip = "192.0.2.1"


def test_redaction_fails_closed_to_the_quarantine(tmp_path, caplog):
    q = tmp_path / "quarantine.jsonl"
    p = pipeline(FlakyRedactor(fail_on=(0, 2)), config=f'[ikefilter]\nquarantine = "{q}"\n')
    assert p.site.info.redaction
    with caplog.at_level(logging.ERROR, logger="ikefilter"):
        first = p.process_lines(lines(6))
        second = p.process_lines(lines(3))
        third = p.process_lines(lines(2))
    assert first == [None] * 6 and third == [None] * 2
    assert all(e.source.ip == "192.0.2.1" and e.event.original is None for e in second)
    assert p.stats.quarantined == 8 and p.stats.out == 3 and counts_add_up(p)
    assert stat.S_IMODE(os.stat(q).st_mode) == 0o600
    records = [json.loads(x) for x in q.read_text().splitlines()]
    assert len(records) == 8
    assert records[0]["original"] == lines(6)[0]
    assert records[0]["plugin"] == "flaky" and records[0]["stage"] == "redact"
    assert records[0]["error"] == "ValueError"
    # The exception text may hold the very values being redacted: never in the log.
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "81.2.3" not in errors[0]


def test_quarantine_without_a_file_discards_and_counts(caplog):
    p = pipeline(FlakyRedactor())
    assert p.process_lines(lines(4)) == [None] * 4
    assert p.stats.quarantined == 4 and counts_add_up(p)
    # No quarantine file: nothing needs the raw line, so the normalizer never keeps it.
    assert p.normalizer.keep_original is False


def test_an_open_quarantine_file_is_refused(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("")
    q.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        pipeline(FlakyRedactor(), config=f'[ikefilter]\nquarantine = "{q}"\n')


def test_the_runner_strips_event_original_whenever_redaction_is_on():
    class Lazy:
        name = "lazy"

        @ikefilter.hookimpl
        def ikefilter_redact(self, events):
            pass

    out = pipeline(Lazy()).process_lines(lines(2) + ["{not json"])
    assert all(e.event.original is None for e in out)
    out = pipeline().process_lines(lines(1))
    assert out[0].event.original == lines(1)[0]


# -- configure, tables, unconfigure -------------------------------------------------------


class Options(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    weight: int = 1


class Configurable:
    name = "labeller"

    def __init__(self):
        self.options = None
        self.info = None
        self.closed = False

    @ikefilter.hookimpl
    def ikefilter_config_tables(self):
        return {"labeller": Options}

    @ikefilter.hookimpl
    def ikefilter_configure(self, config, info):
        self.options = config.plugins.get("labeller")
        self.info = info

    @ikefilter.hookimpl
    def ikefilter_enrich(self, events):
        if self.options is None:
            return
        for e in events:
            e.labels = {"site": self.options.label}

    @ikefilter.hookimpl
    def ikefilter_unconfigure(self, config):
        self.closed = True


def test_a_plugin_owns_its_config_table():
    plugin = Configurable()
    p = pipeline(plugin, config='[plugins.labeller]\nlabel = "hq"\n', command="run")
    assert plugin.options == Options("hq")
    assert plugin.info.command == "run" and not plugin.info.redaction
    assert p.process_lines(lines(1))[0].labels == {"site": "hq"}
    app.report_stats(p, type("Args", (), {"stats": None})())
    assert plugin.closed


def test_without_its_table_a_plugin_stays_inactive():
    plugin = Configurable()
    [event] = pipeline(plugin).process_lines(lines(1))
    assert plugin.options is None and event.labels is None


def test_a_typo_in_a_plugin_table_names_the_file_line_and_key(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[ikefilter]\n\n[plugins.labeller]\nlabel = "hq"\nwieght = 2\n')
    with pytest.raises(ConfigError) as err:
        app.build_pipeline(config_path=str(site), plugins=[Configurable()], entry_points=False)
    assert str(err.value) == f"{site}:5: plugins.labeller.wieght: unknown key"


def test_a_table_nobody_reads_is_an_error_unless_its_plugin_is_disabled():
    with pytest.raises(ConfigError, match=r"plugins\.geoip: no loaded plugin reads this table"):
        pipeline(config='[plugins.geoip]\ncity_db = "x"\n')
    pipeline(config='[ikefilter]\ndisable_plugins = ["severity"]\n[plugins.severity]\nx = 1\n')


def test_two_plugins_cannot_claim_one_table():
    class Other(Configurable):
        name = "other"

    with pytest.raises(PluginError, match="both claim"):
        pipeline(Configurable(), Other())


def test_a_plugin_that_refuses_to_configure_stops_start_up():
    class Refuses:
        @ikefilter.hookimpl
        def ikefilter_configure(self, config):
            raise ValueError("no database at /nope")

    with pytest.raises(PluginError, match="plugin 'Refuses' cannot start: no database"):
        pipeline(Refuses())


# -- commands ------------------------------------------------------------------------------


def test_plugins_command_lists_plugins_and_hooks(tmp_path, capsys):
    plugin_file = tmp_path / "mine.py"
    plugin_file.write_text("import ikefilter\n\n@ikefilter.hookimpl\n"
                           "def ikefilter_enrich(events):\n    pass\n")
    assert cli.main(["plugins", "--plugin", str(plugin_file)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^redact +configure, redact$", out, re.M)
    assert re.search(r"^mine +enrich$", out, re.M) and str(plugin_file) in out
    assert cli.main(["plugins", "--json", "--disable-plugin", "severity"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows if r["name"] in ("redact", "severity")] == ["redact"]


def test_plugins_command_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "site.toml"
    bad.write_text("[redact]\nip = 'hmacc'\n")
    assert cli.main(["plugins", "--config", str(bad)]) == 2
    assert f"{bad}:2: redact.ip: Invalid enum value 'hmacc'" in capsys.readouterr().err


def test_run_with_a_bad_config_exits_with_the_key(tmp_path, capsys):
    bad = tmp_path / "site.toml"
    bad.write_text("[ikefilter]\nnon_clavister = 'keep'\n")
    assert cli.main(["run", "--config", str(bad), os.devnull]) == 2
    err = capsys.readouterr().err
    assert f"ikefilter run: {bad}:2: ikefilter.non_clavister: Invalid enum value 'keep' " \
        "(allowed: pass, tag, drop)" in err


def test_run_applies_the_config(tmp_path, monkeypatch, capsysbinary):
    src = tmp_path / "in.log"
    src.write_text("\n".join(lines(3)) + "\n")
    site = tmp_path / "site.toml"
    site.write_text('[redact]\nip = "truncate"\n[[severity.rule]]\ncode = 530\n'
                    'severity = "warning"\n')
    stats = tmp_path / "stats.json"
    assert cli.main(["run", "--config", str(site), "--stats", str(stats), str(src)]) == 0
    out = [json.loads(x) for x in capsysbinary.readouterr().out.splitlines()]
    assert [e["source"]["ip"] for e in out] == ["81.2.3.0"] * 3
    assert all(e["log"]["level"] == "warning" for e in out)
    assert "original" not in out[0]["event"]
    assert json.loads(stats.read_text())["out"] == 3
    assert sys.modules["ikefilter.host"] is host


def test_an_unencodable_value_from_a_plugin_fails_only_that_event(caplog):
    """A plugin that leaves an object in one event: that event comes out tagged, the rest of the
    batch is written as normal, and every output encodes."""

    class Sloppy:
        @ikefilter.hookimpl
        def ikefilter_enrich(self, events):
            events[1].labels = {"peer": object()}  # no encoder takes a bare object

    p = pipeline(Sloppy())
    out = p.process_lines(lines(3))
    encoded = msgspec.json.Encoder().encode_lines(out)
    docs = [json.loads(line) for line in encoded.splitlines()]
    assert len(docs) == 3
    assert "ikefilter_internal_error" in docs[1]["tags"]
    assert "cannot be encoded" in docs[1]["error"]["message"]
    assert docs[1]["event"]["code"] == "530"
    assert "ikefilter_internal_error" not in docs[0]["tags"] + docs[2]["tags"]
    assert counts_add_up(p)
    assert sum("cannot be encoded" in r.getMessage() for r in caplog.records) == 1


def test_a_slow_plugin_delays_but_loses_and_reorders_nothing(tmp_path):
    """A site plugin that takes 0.2 s a batch: `ikefilter run` still writes every line, in
    order, each batch whole, and the counts add up."""
    import subprocess

    plugin = tmp_path / "slow_site.py"
    plugin.write_text(textwrap.dedent("""
        import time
        import ikefilter

        @ikefilter.hookimpl
        def ikefilter_enrich(events):
            time.sleep(0.2)
            for e in events:
                e.labels = {"seen": "yes"}
    """))
    stats = tmp_path / "stats.json"
    # several batches: the reader hands over what a 64 KiB read returns
    data = "".join(LINE.format(n=i % 250 + 1) + "\n" for i in range(2000)).encode()
    result = subprocess.run(
        [sys.executable, "-m", "ikefilter", "run", "--plugin", str(plugin), "--stats", str(stats)],
        input=data, capture_output=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(docs) == 2000
    assert [d["event"]["original"] for d in docs] == data.decode().splitlines()
    assert all(d["labels"] == {"seen": "yes"} for d in docs)
    counted = json.loads(stats.read_text())
    assert counted["in"] == counted["out"] == 2000
