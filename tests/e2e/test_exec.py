"""Exec filters (Fluentd exec_filter, Logstash pipe, Vector exec) and the forward command, as
child processes driven the way those pipelines drive them.

Fluentd's exec_filter writes each record as a bare msgpack map (``<format> @type msgpack``)
and reads back a stream of maps (``<parse> @type msgpack``); with JSON it writes one object
per line. Either way the filter must answer what it has read without waiting for more.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from ikefilter.adapters.msgpack_stream import object_ends

from .conftest import (
    DOC,
    Daemon,
    check_document,
    child_env,
    emit_lines,
    generated,
    read_json_lines,
    record_throughput,
    reference_documents,
    wait_for,
)

enc = msgspec.msgpack.Encoder()
dec = msgspec.msgpack.Decoder()


class Filter:
    """``ikefilter run`` as a pipeline's child: stdin and stdout pipes, stderr kept apart."""

    def __init__(self, *args: str, stderr: Path | None = None):
        self._stderr = open(stderr or os.devnull, "wb")  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "run", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=child_env(),
        )
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_until(self, done, timeout: float = 15) -> bytes:
        """Read stdout until ``done(buffer)``, with a deadline; the stream stays open."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not done(self.buf):
            left = deadline - time.monotonic()
            assert left > 0, f"no complete answer within {timeout} s; have {len(self.buf)} bytes"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                assert chunk, "the filter exited"
                self.buf += chunk
        return self.buf

    def maps(self, count: int, timeout: float = 15) -> list[dict]:
        self.read_until(lambda b: len(object_ends(b, 1 << 30)) >= count, timeout)
        ends = object_ends(self.buf, 1 << 30)[:count]
        out = [dec.decode(self.buf[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        self.buf = self.buf[ends[-1]:]
        return out

    def json_lines(self, count: int, timeout: float = 15) -> list[dict]:
        self.read_until(lambda b: b.count(b"\n") >= count, timeout)
        lines = self.buf.split(b"\n")
        self.buf = b"\n".join(lines[count:])
        return [msgspec.json.decode(line) for line in lines[:count]]

    def close(self, timeout: float = 60) -> tuple[int, bytes]:
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        status = self.proc.wait(timeout)
        self._stderr.close()
        return status, self.buf + rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


@pytest.fixture
def filters():
    started: list[Filter] = []

    def start(*args: str, **kwargs) -> Filter:
        f = Filter(*args, **kwargs)
        started.append(f)
        return f

    yield start
    for f in started:
        f.kill()


def _records(lines: list[str]) -> list[dict]:
    """What Fluentd holds after in_tail/in_syslog: the line under ``message`` or ``log``."""
    return [msgspec.json.decode(line) if line[:1] == "{" else {"message": line} for line in lines]


def test_msgpack_stream_answers_each_record_without_waiting(filters):
    lines = generated(28 * 3)
    refs = reference_documents(lines)
    f = filters("--input-format", "msgpack", "--output-format", "msgpack")
    records = _records(lines)
    # One record, no more input: its map comes back while stdin stays open.
    f.send(enc.encode(records[0]))
    (doc,) = f.maps(1)
    check_document(doc, refs[0])
    # A record split across writes is read whole.
    packed = enc.encode(records[1])
    f.send(packed[:7])
    time.sleep(0.05)
    f.send(packed[7:])
    check_document(f.maps(1)[0], refs[1])
    # The rest in one burst, in order, with an array of maps in the middle (Fluentd's parser
    # accepts both).
    rest = records[2:]
    f.send(b"".join(enc.encode(r) for r in rest[:10]) + enc.encode(rest[10:20])
           + b"".join(enc.encode(r) for r in rest[20:]))
    docs = f.maps(len(rest))
    for doc, ref in zip(docs, refs[2:], strict=True):
        check_document(doc, ref)
    status, leftover = f.close()
    assert status == 0 and leftover == b""


def test_msgpack_bin_values_ext_times_and_odd_objects(filters):
    line = generated(1)[0]
    f = filters("--input-format", "msgpack", "--output-format", "msgpack")
    # Fluentd packs binary-encoded strings as bin, times as EventTime (ext 0).
    event_time = msgspec.msgpack.Ext(0, (1764151200).to_bytes(4, "big") + bytes(4))
    f.send(enc.encode({"log": line.encode(), "time": event_time})
           + enc.encode({"message": "GET / HTTP/1.1 200", "time": 1764151200})
           + enc.encode("not a map"))
    ike, other, odd = f.maps(3)
    assert ike["event"]["code"] and ike["event"]["original"] == line
    assert other == {"message": "GET / HTTP/1.1 200", "time": 1764151200}  # passed unchanged
    assert "ikefilter_parse_failure" in odd["tags"]
    status, _ = f.close()
    assert status == 0


def test_msgpack_truncated_input_is_reported_not_lost(filters, tmp_path: Path):
    f = filters("--input-format", "msgpack", "--output-format", "msgpack",
                stderr=tmp_path / "err")
    packed = enc.encode({"log": generated(1)[0]})
    f.send(packed + packed[:5])
    status, out = f.close()
    assert status == 0
    docs = [dec.decode(out[a:b]) for a, b in
            zip([0, *object_ends(out)[:-1]], object_ends(out), strict=True)]
    assert len(docs) == 2 and "ikefilter_parse_failure" in docs[1]["tags"]


def test_msgpack_garbage_stops_with_an_error(filters, tmp_path: Path):
    f = filters("--input-format", "msgpack", "--output-format", "msgpack",
                stderr=tmp_path / "err")
    f.send(enc.encode({"log": generated(1)[0]}) + b"\xc1\x00")
    status, out = f.close()
    assert status == 3  # input: not a msgpack stream (ikefilter/exits.py)
    assert len(object_ends(out)) == 1  # what came before the garbage was answered
    assert "not a msgpack stream" in (tmp_path / "err").read_text()


@pytest.mark.parametrize("formats", [("msgpack", "ecs"), ("auto", "msgpack")])
def test_mixed_formats(filters, formats):
    lines = generated(28)
    refs = reference_documents(lines)
    f = filters("--input-format", formats[0], "--output-format", formats[1])
    if formats[0] == "msgpack":
        f.send(b"".join(enc.encode(r) for r in _records(lines)))
        docs = f.json_lines(len(lines))
    else:
        f.send("".join(line + "\n" for line in lines).encode())
        docs = f.maps(len(lines))
    for doc, ref in zip(docs, refs, strict=True):
        check_document(doc, ref)
    assert f.close()[0] == 0


def test_json_lines_answer_each_line_without_waiting(filters):
    """Fluentd exec_filter with JSON, Logstash pipe, Vector exec: JSON lines both ways."""
    lines = generated(28 * 4, shapes=("bracketed", "json-log", "json-message", "rfc5424"))
    refs = reference_documents(lines)
    f = filters()
    for line, ref in zip(lines[:3], refs[:3], strict=True):
        f.send(line.encode() + b"\n")
        check_document(f.json_lines(1)[0], ref)
    f.send("".join(line + "\n" for line in lines[3:]).encode())
    for doc, ref in zip(f.json_lines(len(lines) - 3), refs[3:], strict=True):
        check_document(doc, ref)
    status, rest = f.close()
    assert status == 0 and rest == b""


def test_msgpack_throughput_20000_records(tmp_path: Path):
    n = 20000
    lines = generated(n, shapes=("bracketed", "rfc3164", "rfc5424"), seed=5)
    source = tmp_path / "in.msgpack"
    source.write_bytes(b"".join(enc.encode({"log": line}) for line in lines))
    start = time.monotonic()
    with open(source, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "ikefilter", "run", "--input-format", "msgpack",
             "--output-format", "msgpack"],
            stdin=stdin, capture_output=True, env=child_env(), timeout=300, check=False,
        )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    record_throughput("ikefilter run --input-format msgpack (stdin to stdout)", n, elapsed)
    assert len(object_ends(result.stdout, 1 << 30)) == n


# -- ikefilter forward, as a command ---------------------------------------------------------


def _forward(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[Daemon, int]:
    daemon = Daemon([sys.executable, "-m", "ikefilter", "forward", "--listen", "127.0.0.1:0",
                     *args], tmp_path / "forward.log", env=env or child_env())
    found = wait_for(lambda: re.search(r"listening on [\d.]+:(\d+)", daemon.log()), 20,
                     "the forward server to listen", proc=daemon.proc)
    return daemon, int(found.group(1))


def test_forward_command_to_json_lines(tmp_path: Path):

    out = tmp_path / "ecs.json"
    lines = generated(28)
    daemon, port = _forward(tmp_path, "--output", str(out), "--source-key", "log")
    try:
        emit_lines(port, lines, "clavister")
        wait_for(lambda: len(read_json_lines(out)) >= len(lines), 20, "the documents",
                 proc=daemon.proc)
    finally:
        assert daemon.stop() == 0, daemon.log()
    for doc, ref in zip(read_json_lines(out), reference_documents(lines), strict=True):
        check_document(doc, ref)


def test_forward_command_requires_the_shared_key_it_names(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "ikefilter", "forward", "--listen", "127.0.0.1:0",
         "--output", "-", "--shared-key-env", "IKEFILTER_TEST_NO_SUCH_VAR"],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "IKEFILTER_TEST_NO_SUCH_VAR" in result.stderr


# -- the commands docs/integrations.md gives each pipeline, run as written --------------------



def documented(pattern: str) -> str:
    """The one command in docs/integrations.md that ``pattern`` (a regex with one group)
    finds."""
    (found,) = re.findall(pattern, DOC.read_text("utf-8"), re.M)
    return found


def localized(command: str, tmp_path: Path) -> str:
    """A documented command with its install and site paths pointed at this test's."""
    from .conftest import ikefilter_command

    (tmp_path / "site.toml").write_text('[time]\nzone = "UTC"\n')
    for path, here in (("/opt/ikefilter/bin/ikefilter", ikefilter_command()),
                       ("/etc/ikefilter/site.toml", tmp_path / "site.toml"),
                       ("/var/log/clavister/fw.log", tmp_path / "fw.log"),
                       ("/var/lib/ikefilter/ecs.ndjson", tmp_path / "ecs.ndjson"),
                       ("/var/log/ikefilter.log", tmp_path / "ikefilter.log")):
        command = command.replace(path, str(here))
    assert "/opt/" not in command and "/etc/" not in command and "/var/" not in command
    return command


FLUENTD_JSON = r"^  command (/opt/ikefilter/bin/ikefilter run --config \S+)$"
FLUENTD_MSGPACK = r"^  command (/opt/ikefilter/bin/ikefilter run --input-format msgpack .*)$"
LOGSTASH = r'^    command => "(.*ikefilter run >> .*)"$'
VECTOR = r'^command = \["/bin/sh", "-c", "(tail -F .*ikefilter run)"\]$'
FLUENT_BIT = r"^    Command   (tail -F .*)$"


@pytest.mark.parametrize("pattern", [FLUENTD_JSON, FLUENTD_MSGPACK],
                         ids=["fluentd-exec-json", "fluentd-exec-msgpack"])
def test_fluentd_exec_filter_commands_as_documented(pattern, tmp_path: Path):
    """Fluentd's exec_filter writes records (JSON lines, or bare msgpack maps) and reads one
    answer per record, without closing the child's stdin."""
    lines = generated(28 * 2)
    refs = reference_documents(lines)
    proc = subprocess.Popen(["/bin/sh", "-c", localized(documented(pattern), tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=child_env())
    try:
        msgpack = pattern is FLUENTD_MSGPACK
        records = _records(lines)
        proc.stdin.write(b"".join(enc.encode(r) for r in records) if msgpack else
                         b"".join(msgspec.json.encode(r) + b"\n" for r in records))
        proc.stdin.flush()
        out, fd, deadline = b"", proc.stdout.fileno(), time.monotonic() + 30
        while (len(object_ends(out, 1 << 30)) if msgpack else out.count(b"\n")) < len(lines):
            assert time.monotonic() < deadline, "no answer for every record"
            if select.select([fd], [], [], 1)[0]:
                out += os.read(fd, 1 << 20)
        if msgpack:
            ends = object_ends(out, 1 << 30)
            docs = [dec.decode(out[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        else:
            docs = [msgspec.json.decode(line) for line in out.splitlines()]
        for doc, ref in zip(docs, refs, strict=True):
            check_document(doc, ref)
    finally:
        proc.kill()
        proc.wait(10)


def test_logstash_pipe_command_as_documented(tmp_path: Path):
    """Logstash's pipe output writes ``message_format`` ("%{message}": the line as the udp
    input received it) and a newline; the documents go to the file the second pipeline
    reads."""
    lines = generated(28 * 2)
    proc = subprocess.run(["/bin/sh", "-c", localized(documented(LOGSTASH), tmp_path)],
                          input="".join(line + "\n" for line in lines).encode(),
                          env=child_env(), timeout=120, check=False, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    docs = read_json_lines(tmp_path / "ecs.ndjson")
    for doc, ref in zip(docs, reference_documents(lines), strict=True):
        check_document(doc, ref)


@pytest.mark.parametrize("pattern", [VECTOR, FLUENT_BIT], ids=["vector-exec", "fluent-bit-exec"])
def test_exec_sources_as_documented(pattern, tmp_path: Path):
    """Vector's exec source (streaming) and Fluent Bit's exec input (Oneshot) run the command
    once and read its stdout for as long as it runs: lines appended to the log come out as
    documents while the command keeps running, and nothing but documents is on stdout."""
    lines = generated(28 * 2)
    refs = reference_documents(lines)
    log = tmp_path / "fw.log"
    log.write_text("")
    proc = subprocess.Popen(["/bin/sh", "-c", localized(documented(pattern), tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=child_env(), start_new_session=True)
    try:
        time.sleep(1)  # tail -F is following the file
        with open(log, "a") as f:
            f.write("".join(line + "\n" for line in lines))
        out, fd, deadline = b"", proc.stdout.fileno(), time.monotonic() + 60
        while out.count(b"\n") < len(lines):
            assert time.monotonic() < deadline, "no document for every line appended"
            assert proc.poll() is None, "the command ended"
            if select.select([fd], [], [], 1)[0]:
                out += os.read(fd, 1 << 20)
        docs = [msgspec.json.decode(line) for line in out.splitlines()]
        for doc, ref in zip(docs, refs, strict=True):
            check_document(doc, ref)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
