"""syslog-ng 3.38 running ``ikefilter.syslogng.Parser`` in-process, with the documented config.

syslog-ng embeds Debian's /usr/bin/python3, so ikefilter is installed into a venv made with
that interpreter, as the docs tell a site to do.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from .conftest import (
    EXAMPLES,
    INSTALLED,
    REPO,
    Daemon,
    apt_install,
    cache_dir,
    check_document,
    count_lines,
    free_port,
    generated,
    quoted_example,
    read_json_lines,
    record_throughput,
    reference_documents,
    render,
    send_tcp,
    send_udp,
    timed_outputs,
)

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def system_venv() -> Path:
    """A venv of /usr/bin/python3 with this checkout installed; created once, reused."""
    apt_install(*INSTALLED["syslog-ng"])
    venv = cache_dir("syslog-ng-venv")
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    if not python.exists():
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)], check=True,
                       timeout=300)
    # pip reinstalls a project given as a directory every time: the venv gets this checkout.
    subprocess.run([*pip, "install", str(REPO)], check=True, timeout=600)
    return venv


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0]


PARSER = 'python(class("ikefilter.syslogng.Parser"));'

# A baseline's log path: the example's, with another parser.
BASELINE_PATH = """
source s_baseline{i} {{
    network(ip("127.0.0.1") port({port}) transport("tcp") flags(store-raw-message));
}};
parser p_baseline{i} {{ python(class("{cls}")); }};
destination d_baseline{i} {{ file("{out}" template("${{ike.json}}\\n")); }};
log {{
    source(s_baseline{i});
    if {{
        parser(p_baseline{i});
        if ("${{ike.json}}" ne "") {{ destination(d_baseline{i}); }};
    }} else {{
        destination(d_baseline{i});
    }};
}};
"""

# Parsers as light as a Python parser can be: one sets one name-value pair; the other sets
# it to a whole ECS document made once, so the daemon carries and writes as many bytes per
# message as with ikefilter.
BASELINE_PARSERS = """\
DOCUMENT = {document!r}


class Trivial:
    def init(self, options):
        return True

    def deinit(self):
        pass

    def parse(self, msg):
        msg["ike.json"] = "{{}}"
        return True


class FixedDocument(Trivial):
    def parse(self, msg):
        msg["ike.json"] = DOCUMENT
        return True
"""


class SyslogNg:
    """syslog-ng with the example config; ``parser_options`` are added to the parser.

    Each of ``baselines`` (name -> a parser class in ``baseline_dir``) gets a port and an
    output file of its own, in a log path shaped like the example's."""

    def __init__(self, workdir: Path, venv: Path, parser_options: str = "",
                 baselines: dict[str, str] | None = None, baseline_dir: Path | None = None):
        self.port = free_port()
        self.ecs = workdir / "ecs.json"
        self.other = workdir / "other.log"
        self.conf = workdir / "syslog-ng.conf"
        site_packages = _site_packages(venv)
        text = render(EXAMPLES / "syslog-ng.conf", self.conf,
                      SITE_PACKAGES=site_packages, PORT=self.port, ECS_OUTPUT=self.ecs,
                      OTHER_OUTPUT=self.other)
        if parser_options:
            assert PARSER in text
            text = text.replace(PARSER, PARSER.replace("));", f") options({parser_options}));"))
        self.baselines: dict[str, tuple[int, Path]] = {}
        if baselines:
            addsitedir = f'site.addsitedir("{site_packages}")\n'
            assert addsitedir in text
            text = text.replace(addsitedir, f'{addsitedir}import sys\n'
                                             f'sys.path.insert(0, "{baseline_dir}")\n')
            for i, (name, cls) in enumerate(baselines.items()):
                port, out = free_port(), workdir / f"baseline{i}.out"
                self.baselines[name] = (port, out)
                text += BASELINE_PATH.format(i=i, port=port, cls=cls, out=out)
        self.conf.write_text(text)
        self.daemon = Daemon(
            ["syslog-ng", "-F", "-e", "-f", str(self.conf), "-R", str(workdir / "persist"),
             "-p", str(workdir / "syslog-ng.pid"), "-c", str(workdir / "syslog-ng.ctl")],
            workdir / "syslog-ng.log",
        )

    def wait_ready(self) -> None:
        self.daemon.wait_listening(self.port, "syslog-ng")
        for port, _ in self.baselines.values():
            self.daemon.wait_listening(port, "syslog-ng")

    def wait_lines(self, path: Path, count: int, timeout: float) -> None:
        self.daemon.wait_lines(path, count, timeout)


def test_docs_quote_the_config_the_test_runs():
    assert quoted_example("syslog-ng.conf") == (EXAMPLES / "syslog-ng.conf").read_text("utf-8")


@pytest.fixture
def syslog_ng(tmp_path: Path, system_venv: Path):
    daemon = SyslogNg(tmp_path, system_venv)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        status = daemon.daemon.stop()
    assert status == 0, daemon.daemon.log()[-2000:]  # syslog-ng stopped cleanly on SIGTERM


def test_tcp_and_udp_lines_become_ecs_documents(syslog_ng: SyslogNg):
    lines = generated(28 * len(("bracketed", "bare", "rfc3164", "rfc5424", "receiver",
                                "raw-ids")))
    json_lines = generated(28 * 2, shapes=("json-log", "rsyslog"), seed=3)
    not_ike = "<13>Nov 26 10:00:00 web01 nginx[42]: GET / HTTP/1.1 200"
    send_tcp(syslog_ng.port, [*lines, not_ike, *json_lines])
    syslog_ng.wait_lines(syslog_ng.ecs, len(lines) + len(json_lines), 30)
    syslog_ng.wait_lines(syslog_ng.other, 1, 10)

    docs = read_json_lines(syslog_ng.ecs)
    assert len(docs) == len(lines) + len(json_lines)
    refs = reference_documents(lines + json_lines)
    for doc, ref in zip(docs, refs, strict=True):
        check_document(doc, ref)
    # Types survive: integers stay integers, lists stay lists, nesting is kept.
    assert all(isinstance(d["event"]["severity"], int) for d in docs)
    assert all(isinstance(d["event"]["category"], list) for d in docs if "category" in d["event"])
    assert any(isinstance(d.get("source", {}).get("port"), int) for d in docs)
    assert all("ike.json" not in d for d in docs)
    assert syslog_ng.other.read_text().splitlines() == [not_ike]

    # UDP: one datagram per line, same documents.
    udp_lines = generated(56, seed=11)
    send_udp(syslog_ng.port, udp_lines)
    syslog_ng.wait_lines(syslog_ng.ecs, len(docs) + len(udp_lines), 30)
    udp_docs = read_json_lines(syslog_ng.ecs)[len(docs):]
    codes = sorted(d["event"]["code"] for d in udp_docs)
    assert codes == sorted(r["event"]["code"] for r in reference_documents(udp_lines))


def test_throughput_20000_lines(tmp_path: Path, system_venv: Path):
    """ikefilter's parser against Python parsers that do (next to) nothing, in one daemon,
    taking turns. The figures are printed, never asserted: only the counts are."""
    n, rounds = 20000, 2
    lines = generated(n, shapes=("bracketed", "rfc3164", "rfc5424"), seed=5)
    document = msgspec.json.encode(reference_documents(lines[:1])[0])
    (tmp_path / "e2e_baseline.py").write_text(
        BASELINE_PARSERS.format(document=document), "utf-8")
    trivial = "syslog-ng: trivial Python parser (sets one field)"
    fixed = "syslog-ng: Python parser setting a fixed ECS document"
    daemon = SyslogNg(tmp_path, system_venv, baseline_dir=tmp_path, baselines={
        trivial: "e2e_baseline.Trivial", fixed: "e2e_baseline.FixedDocument"})
    outputs = {"ikefilter": (daemon.port, daemon.ecs), **daemon.baselines}
    try:
        best = timed_outputs(daemon, outputs, lines, rounds)
    finally:
        status = daemon.daemon.stop()
    assert status == 0, daemon.daemon.log()[-2000:]
    for name in (trivial, fixed):
        record_throughput(name, n, best[name])
    record_throughput("syslog-ng: ikefilter.syslogng.Parser (TCP)", n, best["ikefilter"],
                      relative_to=(trivial, fixed))
    docs = read_json_lines(daemon.ecs)
    assert len(docs) == n * rounds
    assert all(d["ecs"]["version"] and d["event"]["code"] for d in docs)
    for _, out in daemon.baselines.values():
        assert count_lines(out) == n * rounds


def test_dropped_and_quarantined_events_reach_no_output(tmp_path: Path, system_venv: Path,
                                                         site_plugin: Path):
    lines = generated(28 * 3, shapes=("bracketed", "rfc3164", "rfc5424"))
    kept = [ln for ln in lines if " id=1694 " not in ln and " id=1695 " not in ln]
    assert len(kept) == len(lines) - 6
    not_ike = "<13>Nov 26 10:00:00 web01 nginx[42]: GET / HTTP/1.1 200"
    stats = tmp_path / "stats.json"
    daemon = SyslogNg(tmp_path, system_venv,
                      f'"plugin" "{site_plugin}" "stats" "{stats}" "non-ike" "tag"')
    try:
        daemon.wait_ready()
        send_tcp(daemon.port, [*lines, not_ike])
        daemon.wait_lines(daemon.ecs, len(kept) + 1, 30)
        time.sleep(0.5)  # anything wrongly routed would land by now
    finally:
        assert daemon.daemon.stop() == 0, daemon.daemon.log()
    docs = read_json_lines(daemon.ecs)
    assert [d["event"].get("code") for d in docs[:-1]] == [
        r["event"]["code"] for r in reference_documents(kept)]
    # non-ike "tag": the foreign line is an ECS document too, tagged.
    assert "ikefilter_not_clavister" in docs[-1]["tags"]
    assert not daemon.other.exists() or daemon.other.read_text() == ""
    # deinit reported the counts: nothing lost, nothing unaccounted for.
    counts = msgspec.json.decode(stats.read_bytes())
    assert counts["in"] == len(lines) + 1
    assert counts["dropped"] == 3 and counts["quarantined"] == 3
    assert "e2e_site_rules failed" in daemon.daemon.log()  # said once, in syslog-ng's log
