"""Nothing lost: every command counts what it did, and the counts add up.

Each command that processes events runs here as a real subprocess (or, for the syslog-ng
parser, as syslog-ng drives it) over a generated corpus and a hostile one, and must report
``in = out + dropped + quarantined`` on stderr (mmexternal: in its log file, never on stderr)
and in ``--stats FILE``, with ``out`` equal to what it actually wrote.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from conftest import child_env, examples, ikefilter_cmd
from test_hostile import is_blank

import ikefilter
from ikefilter.adapters.forward.protocol import encode_packed_forward, event_time, pack_entries
from ikefilter.adapters.msgpack_stream import object_ends

ROOT = Path(ikefilter.__file__).resolve().parent.parent
STATS_LINE = re.compile(
    rb"in=(\d+) out=(\d+) dropped=(\d+) quarantined=(\d+) tagged=(\d+) passthrough=(\d+) "
    rb"dropped_by_rule=(\{[^\n]*\}) derived=(\d+)")
MAX_LINE = 4096  # the hostile corpus has lines over it; the configs below set it


# -- corpora --------------------------------------------------------------------------------


def generated(count: int = 3000, seed: int = 11) -> list[bytes]:
    proc = ikefilter_cmd("generate", "--count", str(count), "--seed", str(seed))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split(b"\n")
    assert out[-1] == b""
    return out[:-1]


def hostile(base: list[bytes], count: int = 1500, seed: int = 3) -> list[bytes]:
    """Lines that try to break the filter; none contains a newline."""
    r = random.Random(seed)
    nasty = [b'"', b"=", b"[", b"]", b"{", b"}", b"\\", b"\0", b"\x01", b"\x1b", b"\x7f",
             b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"\t",
             b"id=", b'x="', b"<999>", "\u0661.\u0661.\u0661.\u0661".encode()]
    out = []
    for i in range(count):
        kind = i % 10
        line = bytearray(r.choice(base))
        if kind <= 3:  # mutated lines
            for _ in range(r.randint(1, 5)):
                pos = r.randint(0, len(line))
                op = r.randrange(4)
                if op == 0 and line:
                    line[min(pos, len(line) - 1)] ^= 1 << r.randrange(8)
                elif op == 1:
                    del line[pos:]
                elif op == 2:
                    line[pos:pos] = r.choice(nasty)
                else:
                    del line[pos:pos + r.randint(1, 10)]
        elif kind == 4:  # random bytes
            line = bytearray(r.randbytes(r.randint(0, 300)))
        elif kind == 5:  # longer than MAX_LINE: cut and tagged, never dropped
            line += b" pad=" + b"p" * r.randint(MAX_LINE, 3 * MAX_LINE)
        elif kind == 6:  # JSON of the wrong shape, or nested too deep
            depth = r.choice([1, 5, 40, 5000])
            line = bytearray(json.dumps(r.choice([
                {"log": r.choice([1, None, [], {"a": 1}, 2**80, 1.5e300])},
                {"message": line.decode("utf-8", "replace"), "pri": 1e300, "time": "x"},
                {"id": [1, 2], "localip": 7, "localport": "99999", "count": 2**70},
                {"id": "1690", "ip": "\u0661.\u0661.\u0661.\u0661", "@timestamp": "0001-01-01"
                 "T00:00:00+01:00"},
                [1, 2, 3], "a string", 42,
            ])).encode()) if depth < 40 else bytearray(
                b'{"log": ' + b"[" * depth + b"]" * depth + b"}")
        elif kind == 7:  # BOM, CRLF, NUL, control characters
            line = bytearray(r.choice([b"\xef\xbb\xbf", b"", b"\0", b"\x1b[2J"])) + line
            line += r.choice([b"\r", b"", b"\0", b"\x08"])
        elif kind == 8:  # cut JSON records
            record = json.dumps({"log": line.decode("utf-8", "replace")}).encode()
            line = bytearray(record[:r.randint(0, len(record))])
        else:  # empty and blank lines
            line = bytearray(r.choice([b"", b"\r", b" ", b"\t\t"]))
        out.append(bytes(line).replace(b"\n", b" "))
    return out


@pytest.fixture(scope="module")
def corpora() -> dict[str, list[bytes]]:
    """3,000 generated lines and 1,500 hostile ones (every kind in turn); a fifth of each in
    the quick run (conftest.examples)."""
    base = generated(examples(3000))
    return {"generated": base, "hostile": hostile(base, examples(1500))}


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, list[str]]:
    """Command-line options for: defaults; rules that drop; a redaction that quarantines."""
    d = tmp_path_factory.mktemp("configs")
    rules = d / "rules.toml"
    rules.write_text(f"""
[ikefilter]
non_clavister = "drop"
max_line = {MAX_LINE}

[[severity.rule]]
name = "pool-noise"
action = "ip-pool-address-released"
drop = true

[[severity.rule]]
code = 1694
drop = true
""")
    plugin = d / "flaky_redact.py"
    plugin.write_text('''
import ikefilter

@ikefilter.hookimpl
def ikefilter_redact(events):
    """Fails on every batch holding message 1713: such a batch goes to the quarantine."""
    if any(e.event.code == "1713" for e in events):
        raise RuntimeError("redaction failed")
''')
    quarantine = d / "quarantine.toml"
    quarantine.write_text(f"""
[ikefilter]
non_clavister = "tag"
max_line = {MAX_LINE}
quarantine = "quarantine.jsonl"
""")
    return {
        "defaults": [],
        "rules": ["--config", str(rules)],
        "quarantine": ["--config", str(quarantine), "--plugin", str(plugin)],
    }


# -- checks ---------------------------------------------------------------------------------


def reported(stderr: bytes) -> dict:
    found = STATS_LINE.findall(stderr)
    assert len(found) == 1, stderr[-2000:]
    i, o, d, q, t, p, rules, derived = found[0]
    return {"in": int(i), "out": int(o), "dropped": int(d), "quarantined": int(q),
            "tagged": int(t), "passthrough": int(p), "dropped_by_rule": json.loads(rules),
            "derived": int(derived)}


def check_stats(stats_file: Path, stderr: bytes | None, n_in: int, n_out: int) -> dict:
    """The --stats JSON and the stderr report agree, add up, and match what was seen."""
    stats = json.loads(stats_file.read_bytes())
    stats.pop("forward", None)  # the forward server's own counters (test_forward)
    if stderr is not None:
        assert reported(stderr) == stats
    assert stats["in"] == stats["out"] + stats["dropped"] + stats["quarantined"], stats
    assert stats["dropped"] == sum(stats["dropped_by_rule"].values()), stats
    assert stats["in"] == n_in, stats
    assert stats["out"] == n_out, stats
    assert stats["passthrough"] <= stats["out"] and stats["tagged"] <= stats["out"]
    return stats


def blank_lines(lines: list[bytes]) -> int:
    """Lines ``run`` and ``mmexternal`` drop as blank (dropped_by_rule.blank_line)."""
    return sum(map(is_blank, lines))


def check_config_effect(name: str, stats: dict) -> None:
    """What the config dropped or quarantined; blank lines are dropped whatever it says."""
    by_rule = {k: v for k, v in stats["dropped_by_rule"].items() if k != "blank_line"}
    dropped = sum(by_rule.values())
    if name == "rules":
        assert dropped > 0
        assert set(by_rule) <= {"non_clavister", "severity:pool-noise", "severity:rule[1]"}
    elif name == "quarantine":
        assert stats["quarantined"] > 0
    else:
        assert dropped == stats["quarantined"] == 0


def quarantine_file(configs) -> Path:
    return Path(configs["quarantine"][1]).parent / "quarantine.jsonl"


def count_tagged(docs: list[dict]) -> int:
    return sum(1 for d in docs if any(t.startswith("ikefilter_") for t in d.get("tags", ())))


# -- ikefilter run: JSON lines --------------------------------------------------------------


@pytest.mark.parametrize("config", ["defaults", "rules", "quarantine"])
@pytest.mark.parametrize("corpus", ["generated", "hostile"])
def test_run_lines(corpora, configs, config, corpus, tmp_path):
    data = b"\n".join(corpora[corpus]) + b"\n"
    src = tmp_path / "in.log"
    src.write_bytes(data)
    stats_file = tmp_path / "stats.json"
    q = quarantine_file(configs)
    q.unlink(missing_ok=True)
    proc = ikefilter_cmd("run", str(src), "--stats", str(stats_file), *configs[config])
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    n = len(corpora[corpus])
    stats = check_stats(stats_file, proc.stderr, n, len(docs))
    assert stats["tagged"] == count_tagged(docs)
    blanks = blank_lines(corpora[corpus])
    assert stats["dropped_by_rule"].get("blank_line", 0) == blanks
    assert blanks > 0 or corpus == "generated"  # the hostile corpus has blank lines to count
    check_config_effect(config, stats)
    if config == "defaults":
        assert len(docs) == n - blank_lines(corpora[corpus])
    if config == "quarantine":
        assert len(q.read_bytes().splitlines()) == stats["quarantined"]


# -- ikefilter run: msgpack stream ----------------------------------------------------------


def msgpack_stream(lines: list[bytes], seed: int = 5) -> tuple[bytes, int]:
    """Concatenated maps (and objects that are not maps); the number of records they make."""
    r = random.Random(seed)
    enc = msgspec.msgpack.Encoder()
    parts = []
    n = 0
    for line in lines:
        text = line.decode("utf-8", "replace")
        if text.startswith("{"):
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                record = {"log": text}
        else:
            record = {"log": text}
        k = r.randrange(20)
        if k == 0 and parts:  # (a stream begins with a map: see the test of text below)
            record = r.choice([42, "just a string", None, 1.5, b"\xff\x00"])
        elif k == 1:
            record = {"log": line}  # bin, as Fluentd packs Ruby strings
        elif k == 2:
            record = {"message": text, "pri": r.choice([2**63, -1, 3.5, "x", [1]])}
        try:
            parts.append(enc.encode(record))
        except OverflowError:  # an int msgpack cannot hold
            record = {"log": text}
            parts.append(enc.encode(record))
        # An array of maps is read as its maps, one record each (as Fluentd does).
        n += len(record) if type(record) is list else 1
    return b"".join(parts), n


@pytest.mark.parametrize("output_format", ["ecs", "msgpack"])
@pytest.mark.parametrize("config", ["defaults", "rules", "quarantine"])
@pytest.mark.parametrize("corpus", ["generated", "hostile"])
def test_run_msgpack(corpora, configs, config, corpus, output_format, tmp_path):
    data, n = msgpack_stream(corpora[corpus])
    if corpus == "hostile":
        data += b"\x92\xa3abc"  # an object cut short at the end: one more record, tagged
        n += 1
    stats_file = tmp_path / "stats.json"
    proc = ikefilter_cmd("run", "--input-format", "msgpack", "--output-format", output_format,
                         "--stats", str(stats_file), *configs[config], stdin=data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if output_format == "ecs":
        docs = [json.loads(line) for line in proc.stdout.splitlines()]
    else:
        ends = object_ends(proc.stdout)
        assert not ends or ends[-1] == len(proc.stdout)
        docs = msgspec.msgpack.decode(
            (b"\xdd" + len(ends).to_bytes(4, "big")) + proc.stdout)
    stats = check_stats(stats_file, proc.stderr, n, len(docs))
    check_config_effect(config, stats)
    if output_format == "ecs":
        assert stats["tagged"] == count_tagged(docs)


def test_run_msgpack_counts_a_record_json_cannot_carry_as_what_it_writes(tmp_path):
    """A record JSON cannot carry is written as a tagged failure event, and counted as one."""
    line = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1"
    records = [
        {"log": line},
        {"log": "not ours", "blob": msgspec.msgpack.Ext(5, b"\x00\x01")},  # an ext value
        {"log": "not ours either", None: "nil key"},  # a key JSON has no name for
        {"log": "passed on", "n": 1},
    ]
    data = b"".join(msgspec.msgpack.encode(r) for r in records)
    stats_file = tmp_path / "stats.json"
    proc = ikefilter_cmd("run", "--input-format", "msgpack", "--stats", str(stats_file),
                         stdin=data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = [json.loads(doc) for doc in proc.stdout.splitlines()]
    assert [d.get("tags") for d in docs] == [
        ["clavister", "ike"], ["clavister", "ikefilter_unencodable"],
        ["clavister", "ikefilter_unencodable"], None]
    assert "record cannot be written as JSON" in docs[1]["error"]["message"]
    assert "\x00\x01" not in proc.stdout.decode() and "nil key" not in proc.stdout.decode()
    stats = check_stats(stats_file, proc.stderr, 4, 4)
    # as ``run`` counts its lines: tagged what is written tagged, passed what is passed on
    assert (stats["tagged"], stats["passthrough"]) == (2, 1) == (
        count_tagged(docs), sum(1 for d in docs if "event" not in d))


def test_an_unencodable_event_is_counted_tagged_once():
    """An event written as an unencodable failure is tagged once in the counts, however it was
    counted before (the pass-through records are the test above)."""
    from ikefilter.pipeline import Pipeline

    p = Pipeline()
    plain, failed = p.process_lines([
        b"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1",
        b"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=99999 rev=1"])
    assert not any(t.startswith("ikefilter_") for t in plain.tags)
    assert any(t.startswith("ikefilter_") for t in failed.tags)
    counted = (p.stats.tagged, p.stats.passthrough)
    p.count_unencodable([failed])
    assert (p.stats.tagged, p.stats.passthrough) == counted
    p.count_unencodable([plain])
    assert (p.stats.tagged, p.stats.passthrough) == (counted[0] + 1, counted[1])


# -- ikefilter mmexternal -------------------------------------------------------------------


def rsyslog_lines(lines: list[bytes]) -> list[bytes]:
    """What rsyslog's fulljson interface writes: one JSON object per message."""
    out = []
    for line in lines:
        text = line.decode("utf-8", "replace")
        out.append(json.dumps({"msg": text, "rawmsg": text, "hostname": "fw1",
                               "timereported": "2026-11-26T10:00:00+01:00"}).encode())
    return out


@pytest.mark.parametrize("shape", ["fulljson", "raw"])
@pytest.mark.parametrize("config", ["defaults", "rules", "quarantine"])
@pytest.mark.parametrize("corpus", ["generated", "hostile"])
def test_mmexternal(corpora, configs, config, corpus, shape, tmp_path):
    lines = corpora[corpus]
    if shape == "fulljson":
        lines = rsyslog_lines(lines)
    stats_file, log_file = tmp_path / "stats.json", tmp_path / "mm.log"
    proc = ikefilter_cmd("mmexternal", "--stats", str(stats_file), "--log-file", str(log_file),
                         *configs[config], stdin=b"\n".join(lines) + b"\n")
    assert proc.returncode == 0
    assert proc.stderr == b""  # rsyslog reads stderr as replies: never a byte there
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(replies) == len(lines)
    dropped = sum(1 for r in replies if r == {"$!": {"ikefilter": {"dropped": True}}})
    stats = check_stats(stats_file, log_file.read_bytes(), len(lines), len(lines) - dropped)
    assert dropped == stats["dropped"] + stats["quarantined"]
    assert sum(1 for r in replies if r == {}) == stats["passthrough"]
    check_config_effect(config, stats)


def test_mmexternal_without_a_log_file_writes_nothing_on_stderr(corpora, tmp_path):
    stats_file = tmp_path / "stats.json"
    lines = corpora["hostile"][:300]
    proc = ikefilter_cmd("mmexternal", "--stats", str(stats_file),
                         stdin=b"\n".join(lines) + b"\n")
    assert proc.stderr == b""
    assert len(proc.stdout.splitlines()) == len(lines)
    check_stats(stats_file, None, len(lines), len(lines) - blank_lines(lines))


# -- ikefilter forward ----------------------------------------------------------------------


class ForwardProcess:
    def __init__(self, tmp_path: Path, options: list[str]):
        self.out = tmp_path / "forward.jsonl"
        self.stats_file = tmp_path / "forward-stats.json"
        self.err = tmp_path / "forward.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "forward", "--listen", "127.0.0.1:0",
             "--output", str(self.out), "--stats", str(self.stats_file), *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.err, "wb"),
            env=child_env())
        deadline = time.monotonic() + 30
        while True:
            m = re.search(rb"listening on [\d.]+:(\d+)", self.err.read_bytes())
            if m:
                self.port = int(m[1])
                break
            assert self.proc.poll() is None, self.err.read_bytes()
            assert time.monotonic() < deadline, self.err.read_bytes()
            time.sleep(0.05)

    def stop(self) -> bytes:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, self.err.read_bytes()
        return self.err.read_bytes()


def send_packed_forward(port: int, records: list, per_frame: int = 200) -> int:
    """Send PackedForward frames with a chunk id each; wait for every ack. Returns frames."""
    decoder = msgspec.msgpack.Decoder()
    frames = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for start in range(0, len(records), per_frame):
            batch = records[start:start + per_frame]
            payload, count = pack_entries([event_time(1_764_151_200, i) for i in
                                           range(len(batch))], batch)
            chunk = f"c{start}"
            s.sendall(encode_packed_forward("clavister.ike", payload, chunk, count))
            buf = b""
            while True:
                data = s.recv(65536)
                assert data, "connection closed before the ack"
                buf += data
                try:
                    assert decoder.decode(buf) == {"ack": chunk}
                    break
                except msgspec.DecodeError:
                    continue
            frames += 1
    return frames


@pytest.mark.parametrize("config", ["defaults", "rules", "quarantine"])
@pytest.mark.parametrize("corpus", ["generated", "hostile"])
def test_forward(corpora, configs, config, corpus, tmp_path):
    records = [{"log": line.decode("utf-8", "replace"), "host": "fw1"}
               for line in corpora[corpus]]
    fwd = ForwardProcess(tmp_path, configs[config])
    try:
        frames = send_packed_forward(fwd.port, records)
    finally:
        stderr = fwd.stop()
    assert frames == -(-len(records) // 200)
    docs = [json.loads(line) for line in fwd.out.read_bytes().splitlines()]
    stats = check_stats(fwd.stats_file, stderr, len(records), len(docs))
    assert stats["tagged"] == count_tagged(docs)
    check_config_effect(config, stats)
    server = json.loads(fwd.stats_file.read_bytes())["forward"]
    assert (server["connections"], server["frames"], server["acks"]) == (1, frames, frames)
    assert server["events"] == len(records)
    assert server["plaintext"] == server["tls_failures"] == server["protocol_errors"] == 0


# -- the syslog-ng parser -------------------------------------------------------------------


class FakeLogMessage(dict):
    """What syslog-ng hands the parser: name-value pairs read as bytes, set as bytes."""

    def __getitem__(self, key):
        return self.get(key, b"")


@pytest.mark.parametrize("config", ["defaults", "rules", "quarantine"])
@pytest.mark.parametrize("corpus", ["generated", "hostile"])
def test_syslogng_parser(corpora, configs, config, corpus, tmp_path, caplog):
    from ikefilter.syslogng import Parser

    stats_file = tmp_path / "stats.json"
    parser = Parser()
    options = {"stats": str(stats_file)}
    args = configs[config]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag.lstrip("-")] = value
    assert parser.init(options)
    kept = fallback = 0
    for line in corpora[corpus]:
        msg = FakeLogMessage(RAWMSG=line, HOST=b"fw1", ISODATE=b"2026-11-26T10:00:00+01:00")
        if parser.parse(msg):
            if msg.get("ike.json"):
                json.loads(msg["ike.json"])
                kept += 1
        else:
            fallback += 1
    with caplog.at_level("INFO", logger="ikefilter"):
        parser.deinit()
    report = "\n".join(r.getMessage() for r in caplog.records).encode()
    stats = check_stats(stats_file, report, len(corpora[corpus]), kept + fallback)
    assert fallback == stats["passthrough"]
    check_config_effect(config, stats)


def test_run_msgpack_stream_fault_still_reports(corpora, tmp_path):
    """A byte no msgpack object starts with: exit 3, and what came before is counted."""
    data, n = msgpack_stream(corpora["generated"][:500])
    stats_file = tmp_path / "stats.json"
    proc = ikefilter_cmd("run", "--input-format", "msgpack", "--stats", str(stats_file),
                         stdin=data + b"\xc1" + data)
    assert proc.returncode == 3
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    stats = check_stats(stats_file, proc.stderr, n, len(docs))
    assert stats["out"] == n


def test_text_read_as_a_msgpack_stream_is_refused_not_turned_into_records(corpora):
    proc = ikefilter_cmd("run", "--input-format", "msgpack",
                         stdin=b"\n".join(corpora["generated"][:50]) + b"\n")
    assert proc.returncode == 3
    assert proc.stdout == b""
    assert b"input is not a msgpack stream: its first object is int, not a map" in proc.stderr


def test_a_msgpack_stream_read_as_lines_is_refused(corpora):
    """Maps back to back, as Fluentd's msgpack formatter writes them."""
    data = b"".join(msgspec.msgpack.encode({"log": line.decode(), "n": i})
                    for i, line in enumerate(corpora["generated"][:50]))
    proc = ikefilter_cmd("run", stdin=data)
    assert proc.returncode == 3
    assert proc.stdout == b""
    assert b"input starts with a msgpack map or array, not a line: for a msgpack stream, " \
        b"add --input-format msgpack" in proc.stderr


def test_sigterm_reports_counts_of_what_was_written(tmp_path):
    """SIGTERM between batches: exit 143, and the counts match the lines written."""
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "ikefilter", "run", "--stats", str(stats)],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    lines = "".join(
        f"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localip=10.0.0.{i % 250} "
        f"remoteip=81.2.3.4\n" for i in range(300)
    ).encode()
    proc.stdin.write(lines)
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    out = b""
    while out.count(b"\n") < 300 and time.monotonic() < deadline:
        out += proc.stdout.read1(65536)
    proc.send_signal(signal.SIGTERM)  # stdin still open: the filter is waiting for more
    rest, err = proc.communicate(timeout=20)
    out += rest
    assert proc.returncode == 143, err.decode()
    counted = json.loads(stats.read_text())
    assert counted["in"] == counted["out"] == out.count(b"\n") == 300
    assert b"in=300 out=300" in err


def test_forward_counts_entries_that_are_not_time_and_record(tmp_path):
    """A Forward-mode frame with entries that are not [time, map]: they never reach the
    pipeline, yet in = out + dropped still holds, under dropped_by_rule."""
    line = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localip=203.0.113.1"
    entries = [[1_764_151_200, {"log": line}], "junk", [1_764_151_201], [1_764_151_202,
                                                                      {"log": line}]]
    frame = msgspec.msgpack.encode(["clavister.ike", entries, {"chunk": "c1"}])
    fwd = ForwardProcess(tmp_path, [])
    try:
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=30) as s:
            s.sendall(frame)
            assert msgspec.msgpack.decode(s.recv(65536)) == {"ack": "c1"}
    finally:
        stderr = fwd.stop()
    docs = fwd.out.read_bytes().splitlines()
    assert len(docs) == 2
    stats = check_stats(fwd.stats_file, stderr, 4, 2)
    assert stats["dropped"] == 2
    assert stats["dropped_by_rule"] == {"invalid_forward_entry": 2}
