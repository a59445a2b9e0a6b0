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
    Daemon,
    apt_download,
    apt_install,
    cache_dir,
    check_document,
    child_env,
    free_port,
    generated,
    ikefilter_command,
    quoted_example,
    read_json_lines,
    record_throughput,
    reference_documents,
    render,
    send_tcp,
    wait_for,
)


@pytest.fixture(scope="module")
def rsyslog_root() -> Path:
    """rsyslog's files unpacked into a cached directory; its libraries installed."""
    apt_install("libestr0", "libfastjson4", "liblognorm5")
    root = cache_dir("rsyslog")
    rsyslogd = root / "usr" / "sbin" / "rsyslogd"
    if not rsyslogd.exists():
        deb = apt_download("rsyslog", cache_dir("debs"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    assert rsyslogd.exists()
    return root


class Rsyslog:
    """rsyslogd with the example config; ``child_options`` are added to the mmexternal
    command line."""

    def __init__(self, workdir: Path, root: Path, child_options: str = ""):
        self.port = free_port()
        self.ecs = workdir / "ecs.json"
        self.other = workdir / "other.log"
        self.filter_log = workdir / "ikefilter.log"
        self.conf = workdir / "rsyslog.conf"
        (workdir / "spool").mkdir()
        render(EXAMPLES / "rsyslog.conf", self.conf, WORK_DIR=workdir / "spool", PORT=self.port,
               IKEFILTER=ikefilter_command(), LOG_FILE=self.filter_log, ECS_OUTPUT=self.ecs,
               OTHER_OUTPUT=self.other)
        if child_options:
            text = self.conf.read_text()
            assert text.count(" mmexternal --log-file ") == 1
            self.conf.write_text(text.replace(
                " mmexternal --log-file ", f" mmexternal {child_options} --log-file "))
        modules = next((root / "usr" / "lib").glob("*/rsyslog"))
        self.daemon = Daemon(
            [str(root / "usr" / "sbin" / "rsyslogd"), "-n", "-f", str(self.conf),
             "-M", str(modules), "-i", str(workdir / "rsyslogd.pid")],
            workdir / "rsyslogd.log",
        )

    def wait_ready(self) -> None:
        self.daemon.wait_listening(self.port, "rsyslogd")

    def wait_lines(self, path: Path, count: int, timeout: float) -> None:
        def no_invalid_reply() -> None:
            assert "invalid reply" not in self.daemon.log(), self.daemon.log()[-2000:]

        self.daemon.wait_lines(path, count, timeout, no_invalid_reply)


def test_docs_quote_the_config_the_test_runs():
    assert quoted_example("rsyslog.conf") == (EXAMPLES / "rsyslog.conf").read_text("utf-8")


@pytest.fixture
def rsyslog(tmp_path: Path, rsyslog_root: Path):
    daemon = Rsyslog(tmp_path, rsyslog_root)
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


def test_throughput_20000_lines(rsyslog: Rsyslog):
    n = 20000
    lines = generated(n, shapes=("bracketed", "rfc3164", "rfc5424"), seed=5)
    start = time.monotonic()
    send_tcp(rsyslog.port, lines)
    rsyslog.wait_lines(rsyslog.ecs, n, 180)
    elapsed = time.monotonic() - start
    record_throughput("rsyslog (mmexternal, TCP)", n, elapsed)
    docs = read_json_lines(rsyslog.ecs)
    assert len(docs) == n
    assert all(d["event"]["code"] for d in docs)


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
    child = Child("--log-file", str(log_file), "--stats", str(tmp_path / "no-such-dir" / "s"))
    try:
        child.send(_fulljson(generated(1)[0]) + b"garbage\n")
        replies = child.read_lines(2)
        assert msgspec.json.decode(replies[0])["$!"]["event"]["code"]
        status, rest = child.close()
        assert rest == b""
        assert status == 0
        assert "cannot write the stats" in log_file.read_text()
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)
