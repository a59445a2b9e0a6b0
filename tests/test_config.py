"""The site config: defaults, every section, and errors that name the file, line and key."""

from __future__ import annotations

import msgspec
import pytest

from ikefilter import app
from ikefilter.config import ConfigError, SiteConfig, find_line, load, loads
from ikefilter.record import DEFAULT_SOURCE_KEYS

FULL = """\
# A complete site config.
[ikefilter]
plugins = ["site_plugins.enrich", "/etc/ikefilter/local.py"]
disable_plugins = ["geoip"]
non_clavister = "tag"
severity_dialect = "syslog"
source_keys = ["log", "message"]
quarantine = "/var/lib/ikefilter/quarantine.jsonl"

[redact]
ip = "cryptopan"
identity = "hmac"
key_file = "/etc/ikefilter/redact.key"
ipv4_prefix = 16
ipv6_prefix = 56
keep_networks = ["203.0.113.0/24", "2001:db8::/32"]

[[severity.rule]]
code = "803"
severity = "warning"

[[severity.rule]]
name = "pool-noise"
action = "ip-pool-address-requested"
drop = true

[[severity.rule]]
category = "host"
severity = 3

[plugins.sitetable]
path = "sites.csv"
"""


def test_defaults():
    c = SiteConfig()
    assert c.ikefilter.plugins == [] and c.ikefilter.quarantine is None
    assert c.ikefilter.non_clavister is None  # resolved when the pipeline is built
    assert c.ikefilter.severity_dialect == "clavister"
    assert tuple(c.ikefilter.source_keys) == DEFAULT_SOURCE_KEYS
    assert c.redact.ip == c.redact.identity == "keep" and not c.redact.enabled
    assert c.redact.key_source == ("IKEFILTER_REDACT_KEY", None)
    assert c.severity.rule == [] and c.plugins == {}
    assert loads("") == SiteConfig()


def test_every_section():
    c = loads(FULL, "site.toml")
    assert c.ikefilter.plugins == ["site_plugins.enrich", "/etc/ikefilter/local.py"]
    assert c.ikefilter.disable_plugins == ["geoip"]
    assert c.ikefilter.non_clavister == "tag" and c.ikefilter.severity_dialect == "syslog"
    assert c.ikefilter.source_keys == ["log", "message"]
    r = c.redact
    assert (r.ip, r.identity, r.ipv4_prefix, r.ipv6_prefix) == ("cryptopan", "hmac", 16, 56)
    assert r.enabled and r.needs_key and r.key_source == (None, "/etc/ikefilter/redact.key")
    rules = c.severity.rule
    assert [(x.code, x.action, x.category, x.severity, x.drop) for x in rules] == [
        ("803", None, None, 4, False),
        (None, "ip-pool-address-requested", None, None, True),
        (None, None, "host", 3, False),
    ]
    assert c.plugins == {"sitetable": {"path": "sites.csv"}}


def test_a_code_may_be_written_as_a_number_or_zero_padded():
    rules = loads("[[severity.rule]]\ncode = 803\nseverity = 4\n"
                  "[[severity.rule]]\ncode = '00000530'\nseverity = 'Notice'\n").severity.rule
    assert [(r.code, r.severity) for r in rules] == [("803", 4), ("530", 5)]


@pytest.mark.parametrize(("text", "message"), [
    ("[ikefilter]\nplugin = ['x']\n", "site.toml:2: ikefilter.plugin: unknown key"),
    ("\n\n[redact]\nip = 'hmac'\nkey = 'secret'\n", "site.toml:5: redact.key: unknown key"),
    ("[redact]\nip = 'sha1'\n", "site.toml:2: redact.ip: Invalid enum value 'sha1'"),
    ("[redact]\nidentity = 'truncate'\n",
     "site.toml:2: redact.identity: Invalid enum value 'truncate'"),
    ("[redact]\nipv4_prefix = 33\n", "site.toml:2: redact.ipv4_prefix: Expected `int` <= 32"),
    ("[redact]\nipv6_prefix = '48'\n",
     "site.toml:2: redact.ipv6_prefix: Expected `int`, got `str`"),
    ("[redact]\nkeep_networks = ['10.0.0.0/8', 'lan']\n",
     "site.toml:1: redact: keep_networks: 'lan' is not an IP network"),
    ("[ikefilter]\nnon_clavister = 'keep'\n",
     "site.toml:2: ikefilter.non_clavister: Invalid enum value 'keep'"),
    ("[ikefilter]\nsource_keys = 'log'\n",
     "site.toml:2: ikefilter.source_keys: Expected `array`, got `str`"),
    ("[ikefilter]\nquarantine = ''\n",
     "site.toml:2: ikefilter.quarantine: Expected `str` of length >= 1"),
    ("colour = 'blue'\n", "site.toml:1: colour: unknown key"),
    ("[[severity.rule]]\ncode = 1\nseverity = 1\n\n[[severity.rule]]\ncode = 2\nseverty = 1\n",
     "site.toml:7: severity.rule[1].severty: unknown key"),
    ("[[severity.rule]]\ncode = 1\naction = 'x'\nseverity = 1\n",
     "site.toml:1: severity.rule[0]: a rule matches on exactly one of code, action, category"),
    ("[[severity.rule]]\ncode = 1\n",
     "site.toml:1: severity.rule[0]: a rule sets either severity or drop = true"),
    ("[[severity.rule]]\ncode = 1\nseverity = 'loud'\n",
     "site.toml:1: severity.rule[0]: not a syslog severity: 'loud'"),
    ("[[severity.rule]]\ncode = 'x803'\nseverity = 1\n",
     "site.toml:1: severity.rule[0]: code: 'x803' is not a message ID"),
    ("[plugins]\ngeoip = 1\n", "site.toml:1: plugins.*: Expected `object`, got `int`"),
])
def test_errors_name_the_file_line_and_key(text, message):
    with pytest.raises(ConfigError) as err:
        loads(text, "site.toml")
    assert str(err.value).startswith(message)


def test_an_error_never_echoes_a_secret_value():
    with pytest.raises(ConfigError) as err:
        loads("[redact]\nhmac_key = 'hunter2'\n", "site.toml")
    assert "hunter2" not in str(err.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"site\.toml: not valid TOML"):
        loads("[redact\n", "site.toml")
    with pytest.raises(ConfigError, match="cannot read the site config"):
        load(str(tmp_path / "missing.toml"))


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(FULL)
    assert load(str(path)) == loads(FULL)


def test_find_line():
    assert find_line(FULL, ["redact", "ipv6_prefix"]) == 15
    assert find_line(FULL, ["severity", "rule", 1, "drop"]) == 25
    assert find_line(FULL, ["severity", "rule", 2]) == 27
    assert find_line(FULL, ["plugins", "sitetable", "path"]) == 32
    assert find_line(FULL, ["plugins", "sitetable", "nope"]) == 31
    assert find_line('a.b = 1\n"c" . d = 2\n', ["c", "d"]) == 2
    assert find_line(FULL, ["nowhere"]) is None


def test_config_reaches_the_pipeline(tmp_path):
    path = tmp_path / "site.toml"
    q = tmp_path / "q.jsonl"
    path.write_text(f'[ikefilter]\nnon_clavister = "drop"\nseverity_dialect = "syslog"\n'
                    f'source_keys = ["line"]\nquarantine = "{q.name}"\n'
                    f'[redact]\nip = "mask"\n')
    p = app.build_pipeline(config_path=str(path), entry_points=False)
    assert p.reader.non_clavister == "drop" and p.source_keys == ("line",)
    assert p.normalizer.severity_dialect == "syslog"
    # relative to the config file; kept so the quarantine can hold the raw line
    assert p.site.runner.quarantine.path == str(q)
    assert p.normalizer.keep_original is True
    [event, dropped] = p.process_records([
        {"line": "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 remoteip=81.1.1.1"},
        {"other": "x"},
    ])
    assert event.source.ip == "0.0.0.0" and event.event.original is None
    assert dropped is None and p.stats.dropped_by_rule == {"non_clavister": 1}
    p.site.runner.close()


def test_overrides_win_over_the_config():
    p = app.build_pipeline(loads('[ikefilter]\nnon_clavister = "drop"\n'), entry_points=False,
                           non_clavister="tag")
    assert p.reader.non_clavister == "tag"


def test_non_clavister_default_follows_redaction(monkeypatch):
    plain = app.build_pipeline(loads(""), entry_points=False)
    assert plain.reader.non_clavister == "pass"
    redacting = app.build_pipeline(loads('[redact]\nip = "mask"\n'), entry_points=False)
    assert redacting.reader.non_clavister == "tag"
    [doc] = redacting.process_lines(["hello 10.9.9.9 from the lab"])
    assert "10.9.9.9" not in msgspec.json.encode(doc).decode()
    explicit = app.build_pipeline(
        loads('[ikefilter]\nnon_clavister = "pass"\n[redact]\nip = "mask"\n'), entry_points=False
    )
    assert explicit.reader.non_clavister == "pass"
    for p in (plain, redacting, explicit):
        p.site.runner.close()


def test_a_record_not_ours_is_not_claimed_for_clavister():
    """Tagged, a record that is not a Clavister line has no event.module or .dataset."""
    p = app.build_pipeline(loads('[ikefilter]\nnon_clavister = "tag"\n'), entry_points=False)
    docs = [msgspec.to_builtins(d) for d in p.process_lines(
        ["sshd[1]: Accepted publickey", '{"message": "other", "host": "web1"}',
         "EFW: IKE: prio=2 id=530 localport=70000"])]
    for doc in docs[:2]:
        assert doc["tags"] == ["ikefilter_not_clavister"]
        assert doc["event"] == {"kind": "event", "original": doc["message"]}
    # a Clavister line, even one with a bad value, is Clavister's
    assert (docs[2]["event"]["module"], docs[2]["event"]["dataset"]) == ("clavister",
                                                                        "clavister.log")
    p.site.runner.close()


@pytest.mark.parametrize("policy", ["pass", "tag", "drop"])
def test_a_blank_line_is_a_counted_drop_whatever_the_policy(policy):
    p = app.build_pipeline(loads(f'[ikefilter]\nnon_clavister = "{policy}"\n'),
                           entry_points=False)
    assert p.process_lines([b"", b"  ", b"\r", b"\t"]) == [None] * 4
    assert p.process_lines(["", " "]) == [None] * 2
    assert (p.stats.in_, p.stats.out, p.stats.dropped) == (6, 0, 6)
    assert p.stats.dropped_by_rule == {"blank_line": 6}
    p.site.runner.close()
