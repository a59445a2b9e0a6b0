"""rsyslog 8.2302 with ``mmexternal`` running ``ikefilter mmexternal``, the documented config.

rsyslog conflicts with syslog-ng-core as a package, so it is unpacked beside it
(``apt-get download`` + ``dpkg -x``) and run from there with its own module directory.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from .conftest import (
    EXAMPLES,
    INSTALLED,
    Daemon,
    apt_download,
    apt_install,
    cache_dir,
    check_document,
    child_env,
    count_lines,
    free_port,
    generated,
    ikefilter_command,
    quoted_example,
    read_json_lines,
    record_throughput,
    reference_documents,
    render,
    send_tcp,
    timed_outputs,
    wait_for,
)


@pytest.fixture(scope="module")
def rsyslog_root() -> Path:
    """rsyslog's files unpacked into a cached directory; its libraries installed."""
    apt_install(*INSTALLED["rsyslog"])
    root = cache_dir("rsyslog")
    rsyslogd = root / "usr" / "sbin" / "rsyslogd"
    if not rsyslogd.exists():
        deb = apt_download("rsyslog", cache_dir("debs"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    assert rsyslogd.exists()
    return root


# Without --reply text, the document arrives as $! variables, which a ruleset can route on,
# and is written with $!all-json-plain: the example's ruleset as such a site has it.
VARIABLES_TEMPLATE = 'template(name="ecs_variables" type="string" string="%$!all-json-plain%\\n")\n'


def as_variables(ruleset: str) -> str:
    for old, new in ((" mmexternal --reply text ", " mmexternal "),
                     ('if $!ikefilter!json != ""', 'if $!event!kind != ""'),
                     ('template="ecs_json"', 'template="ecs_variables"')):
        assert ruleset.count(old) == 1, old
        ruleset = ruleset.replace(old, new)
    return ruleset


class Rsyslog:
    """rsyslogd with the example config; ``child_options`` are added to the mmexternal
    command line; with ``reply="variables"``, its ruleset is :func:`as_variables`.

    Each of ``baselines`` (name -> another mmexternal command and the reply form of its
    ruleset) gets a port and an output file of its own, in a ruleset that is the example's
    with that command."""

    def __init__(self, workdir: Path, root: Path, child_options: str = "",
                 reply: str = "text", baselines: dict[str, tuple[str, str]] | None = None):
        self.port = free_port()
        self.ecs = workdir / "ecs.json"
        self.other = workdir / "other.log"
        self.filter_log = workdir / "ikefilter.log"
        self.conf = workdir / "rsyslog.conf"
        (workdir / "spool").mkdir()
        text = render(EXAMPLES / "rsyslog.conf", self.conf, WORK_DIR=workdir / "spool",
                      PORT=self.port, IKEFILTER=ikefilter_command(), LOG_FILE=self.filter_log,
                      ECS_OUTPUT=self.ecs, OTHER_OUTPUT=self.other)
        cut = text.index('ruleset(name="clavister")')
        head, example = text[:cut], text[cut:]
        forms = {"text": example, "variables": as_variables(example)}
        ruleset = forms[reply]
        if child_options:
            assert ruleset.count(" mmexternal ") == 1
            ruleset = ruleset.replace(" mmexternal ", f" mmexternal {child_options} ")
        rulesets = [ruleset]
        self.baselines: dict[str, tuple[int, Path]] = {}
        for i, (name, (command, form)) in enumerate((baselines or {}).items()):
            port, out = free_port(), workdir / f"baseline{i}.out"
            self.baselines[name] = (port, out)
            other = forms[form]
            start = other.index('binary="')
            binary = other[start:other.index('"', start + len('binary="')) + 1]
            rulesets.append(
                f'input(type="imtcp" address="127.0.0.1" port="{port}" '
                f'ruleset="baseline{i}" supportOctetCountedFraming="off")\n'
                + other.replace('ruleset(name="clavister")', f'ruleset(name="baseline{i}")')
                .replace(binary, f'binary="{command}"')
                .replace(f'"{self.ecs}"', f'"{out}"').replace(f'"{self.other}"', f'"{out}"'))
        self.conf.write_text(head + VARIABLES_TEMPLATE + "\n" + "\n".join(rulesets))
        modules = next((root / "usr" / "lib").glob("*/rsyslog"))
        self.daemon = Daemon(
            [str(root / "usr" / "sbin" / "rsyslogd"), "-n", "-f", str(self.conf),
             "-M", str(modules), "-i", str(workdir / "rsyslogd.pid")],
            workdir / "rsyslogd.log",
        )

    def wait_ready(self) -> None:
        self.daemon.wait_listening(self.port, "rsyslogd")
        for port, _ in self.baselines.values():
            self.daemon.wait_listening(port, "rsyslogd")

    def wait_lines(self, path: Path, count: int, timeout: float) -> None:
        def no_invalid_reply() -> None:
            assert "invalid reply" not in self.daemon.log(), self.daemon.log()[-2000:]

        self.daemon.wait_lines(path, count, timeout, no_invalid_reply)


def test_docs_quote_the_config_the_test_runs():
    assert quoted_example("rsyslog.conf") == (EXAMPLES / "rsyslog.conf").read_text("utf-8")


@pytest.fixture(params=["text", "variables"])
def rsyslog(request, tmp_path: Path, rsyslog_root: Path):
    """The example config (``--reply text``), and its ruleset as it is with the document as
    ``$!`` variables."""
    daemon = Rsyslog(tmp_path, rsyslog_root, reply=request.param)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.daemon.stop()
    # mmexternal never wrote to the pipe it shares for stderr: rsyslog saw no invalid reply.
    assert "invalid reply" not in daemon.daemon.log()


def test_lines_become_ecs_documents(rsyslog: Rsyslog):
    lines = generated(28 * 6)
    not_ike = "<13>Nov 26 10:00:00 web01 nginx[42]: GET / HTTP/1.1 200"
    send_tcp(rsyslog.port, [*lines[:20], not_ike, *lines[20:]])
    rsyslog.wait_lines(rsyslog.ecs, len(lines), 60)
    rsyslog.wait_lines(rsyslog.other, 1, 10)

    docs = read_json_lines(rsyslog.ecs)
    assert len(docs) == len(lines)
    for doc, ref in zip(docs, reference_documents(lines), strict=True):
        check_document(doc, ref)
    assert all(isinstance(d["event"]["severity"], int) for d in docs)
    assert any(isinstance(d.get("source", {}).get("port"), int) for d in docs)
    assert rsyslog.other.read_text().splitlines() == [not_ike]


# mmexternal children as light as a child can be: they answer every line at once with the
# same reply, never reading it: no change ({}), or an ECS document made once, so that rsyslog
# reads, stores and writes as many bytes per message as with ikefilter.
BASELINE_CHILD = """\
import os

REPLY = {reply!r}
while True:
    data = os.read(0, 65536)
    if not data:
        break
    os.write(1, REPLY * data.count(b"\\n"))
"""


def test_throughput_20000_lines(tmp_path: Path, rsyslog_root: Path):
    """ikefilter mmexternal against children that do nothing, in one daemon, taking turns;
    each reply form in the ruleset that reads it. The figures are printed, never asserted:
    only the counts are."""
    n, rounds = 20000, 2
    lines = generated(n, shapes=("bracketed", "rfc3164", "rfc5424"), seed=5)
    document = msgspec.json.encode(reference_documents(lines[:1])[0])
    trivial = "rsyslog: mmexternal child echoing {}"
    fixed_text = "rsyslog: child answering a fixed document (--reply text form)"
    fixed_variables = "rsyslog: child answering a fixed document (--reply variables form)"
    variables = "rsyslog: ikefilter mmexternal --reply variables (TCP)"
    replies = {
        trivial: (b"{}\n", "text"),
        fixed_text: (b'{"$!":{"ikefilter":{"json":' + msgspec.json.encode(document.decode())
                     + b"}}}\n", "text"),
        fixed_variables: (b'{"$!":' + document + b"}\n", "variables"),
    }
    children = {}
    for i, (name, (reply, form)) in enumerate(replies.items()):
        script = tmp_path / f"baseline_child{i}.py"
        script.write_text(BASELINE_CHILD.format(reply=reply), "utf-8")
        children[name] = (f"{sys.executable} {script}", form)
    children[variables] = (
        f"{ikefilter_command()} mmexternal --log-file {tmp_path / 'variables.log'}",
        "variables")
    daemon = Rsyslog(tmp_path, rsyslog_root, baselines=children)
    outputs = {"ikefilter": (daemon.port, daemon.ecs), **daemon.baselines}
    try:
        best = timed_outputs(daemon, outputs, lines, rounds)
    finally:
        daemon.daemon.stop()
    assert "invalid reply" not in daemon.daemon.log()
    for name in (trivial, fixed_text, fixed_variables):
        record_throughput(name, n, best[name])
    record_throughput("rsyslog: ikefilter mmexternal --reply text (TCP), the example", n,
                      best["ikefilter"], relative_to=(trivial, fixed_text))
    record_throughput(variables, n, best[variables], relative_to=(trivial, fixed_variables))
    docs = read_json_lines(daemon.ecs)
    assert len(docs) == n * rounds
    assert all(d["event"]["code"] for d in docs)
    assert [d["event"]["code"] for d in read_json_lines(daemon.baselines[variables][1])] == [
        d["event"]["code"] for d in docs]
    for name, (_, out) in daemon.baselines.items():
        assert count_lines(out) == n * rounds, name


def test_dropped_and_quarantined_events_reach_no_output(tmp_path: Path, rsyslog_root: Path,
                                                         site_plugin: Path):
    lines = generated(28 * 3, shapes=("bracketed", "rfc3164", "rfc5424"))
    kept = [ln for ln in lines if " id=1694 " not in ln and " id=1695 " not in ln]
    assert len(kept) == len(lines) - 6
    stats = tmp_path / "stats.json"
    daemon = Rsyslog(tmp_path, rsyslog_root, f"--plugin {site_plugin} --stats {stats}")
    try:
        daemon.wait_ready()
        send_tcp(daemon.port, lines)
        daemon.wait_lines(daemon.ecs, len(kept), 30)
        time.sleep(0.5)  # anything wrongly routed would land by now
    finally:
        daemon.daemon.stop()
    log = daemon.daemon.log()
    assert "invalid reply" not in log
    docs = read_json_lines(daemon.ecs)
    assert [d["event"]["code"] for d in docs] == [
        r["event"]["code"] for r in reference_documents(kept)]
    assert not daemon.other.exists() or daemon.other.read_text() == ""
    # The child wrote its counts when rsyslog closed its stdin.
    wait_for(stats.exists, 10, "the child's stats")
    counts = msgspec.json.decode(stats.read_bytes())
    assert counts["in"] == len(lines)
    assert counts["dropped"] == 3 and counts["quarantined"] == 3
    assert "e2e_site_rules failed" in daemon.filter_log.read_text()


# -- the child's protocol, without rsyslog ---------------------------------------------------


class Child:
    """``ikefilter mmexternal`` as rsyslog runs it: stdout and stderr on one pipe."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "mmexternal", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=child_env(),
        )
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_lines(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while self.buf.count(b"\n") < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no reply within {timeout} s; have {self.buf!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"child exited; have {self.buf!r}"
                self.buf += chunk
        lines = self.buf.split(b"\n")
        self.buf = b"\n".join(lines[count:])
        return lines[:count]

    def close(self) -> tuple[int, bytes]:
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        return self.proc.wait(10), self.buf + rest


def _fulljson(line: str) -> bytes:
    return msgspec.json.encode({"msg": line, "rawmsg": line, "hostname": "fw1", "pri": "134",
                                "syslogtag": "EFW:", "programname": "EFW"}) + b"\n"


def test_child_answers_each_line_at_once_in_order():
    lines = generated(56)
    child = Child()
    try:
        # One at a time: every reply comes without waiting for more input.
        for line in lines[:5]:
            child.send(_fulljson(line))
            (reply,) = child.read_lines(1)
            doc = msgspec.json.decode(reply)["$!"]
            assert doc["event"]["original"] == line
        # A burst: one reply per line, in order, whatever each line is.
        burst = [_fulljson(line) for line in lines[5:]]
        odd = [b'{"msg": "hello", "rawmsg": "<13>hello"}\n', b"not json at all\n", b"\n",
               b'{"rawmsg": "\xff\xfe broken utf-8"}\n']
        child.send(b"".join(burst[:10] + odd + burst[10:]))
        replies = child.read_lines(len(burst) + len(odd))
        decoded = [msgspec.json.decode(r) for r in replies]
        assert decoded[10] == {}  # not a Clavister line: unchanged
        codes = [d["$!"]["event"].get("code") for d in decoded[:10] + decoded[14:]]
        refs = reference_documents(lines[5:])
        assert codes == [r["event"].get("code") for r in refs]
        status, rest = child.close()
        assert status == 0
        assert rest == b""  # nothing ever written besides the replies
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)


def test_child_never_writes_stderr_even_when_it_cannot_start(tmp_path: Path):
    log_file = tmp_path / "ikefilter.log"
    stats = tmp_path / "no-such-dir" / "s"
    proc = subprocess.run(
        [sys.executable, "-m", "ikefilter", "mmexternal", "--log-file", str(log_file),
         "--stats", str(stats)], input=_fulljson(generated(1)[0]), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=child_env(), timeout=60)
    # refused before the first message, said in the log file, nothing on the reply pipe
    assert (proc.returncode, proc.stdout) == (4, b"")
    assert log_file.read_text() == f"ikefilter mmexternal: --stats {stats}: no such directory\n"


def test_child_never_writes_stderr_even_when_it_cannot_write_its_stats(tmp_path: Path):
    log_file = tmp_path / "ikefilter.log"
    (tmp_path / "gone").mkdir()
    child = Child("--log-file", str(log_file), "--stats", str(tmp_path / "gone" / "s"))
    try:
        child.send(_fulljson(generated(1)[0]) + b"garbage\n")
        replies = child.read_lines(2)
        assert msgspec.json.decode(replies[0])["$!"]["event"]["code"]
        (tmp_path / "gone").rmdir()  # the directory goes away while the child runs
        status, rest = child.close()
        assert rest == b""
        assert status == 0
        assert "cannot write the stats" in log_file.read_text()
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)


ODD_RECORDS = [
    b'{"msg": "hello", "rawmsg": "<13>hello"}',  # not a Clavister line
    b"not json at all",
    b"",
    b'{"rawmsg": "\xff\xfe broken utf-8"}',
    b'{"id": "530", "localip": "203.0.113.2", "remoteip": "81.192.68.16"}',  # split pairs
    b'{"msg": 530}',  # no line in it
    b'{"rawmsg": "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530", "deep": '
    + b"[" * 40 + b"]" * 40 + b"}",
    b'{"rawmsg": "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1"}\r',
]


def _document(reply: bytes, form: str) -> dict:
    """The document a reply carries (``{}`` and the dropped marker as they are), without the
    times of processing, which differ from one run to the next."""
    decoded = msgspec.json.decode(reply)
    doc = decoded.get("$!", decoded)
    if form == "text" and "json" in doc.get("ikefilter", {}):
        doc = msgspec.json.decode(doc["ikefilter"]["json"])
    stamp = doc.get("@timestamp", "")
    if stamp > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 600)):
        doc["@timestamp"] = "(time of processing)"
    if "ingested" in doc.get("event", {}):
        doc["event"]["ingested"] = "(time of processing)"
    return doc


def test_one_message_at_a_time_is_answered_as_a_batch_is():
    """rsyslog sends one message and waits for its reply: the child reads that message as a
    record. Lines that arrive together are one batch of lines. The answers are the same, and
    ``--reply text`` carries the very document ``--reply variables`` does."""
    records = [_fulljson(line).rstrip(b"\n") for line in generated(28 * 6, seed=13)]
    records = records[:50] + ODD_RECORDS + records[50:]
    documents = {}
    for form in ("variables", "text"):
        single, burst = Child("--reply", form), Child("--reply", form)
        try:
            one_by_one = []
            for record in records:
                single.send(record + b"\n")
                one_by_one += single.read_lines(1)
            burst.send(b"".join(record + b"\n" for record in records))
            together = burst.read_lines(len(records))
            documents[form] = [_document(r, form) for r in one_by_one]
            assert documents[form] == [_document(r, form) for r in together]
            assert (single.close(), burst.close()) == ((0, b""), (0, b""))
        finally:
            for child in (single, burst):
                if child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait(10)
    assert documents["text"] == documents["variables"]
    assert sum(1 for d in documents["text"] if d.get("event", {}).get("code")) >= 28 * 6
