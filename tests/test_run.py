"""``ikefilter run``: one JSON line out per line in, in order, whatever the line."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import ikefilter_cmd

from ikefilter.adapters import lines
from ikefilter.pipeline import Pipeline

# (raw line as bytes without its newline, what must come out)
#   ("event", code, tagged): an ECS event for that event.code; tagged: has an ikefilter_* tag
#   ("pass", record): passed through unchanged
#   ("blank",): nothing written; counted in dropped_by_rule.blank_line
#   ("long", code): a line over 64 KiB: its event whole, or cut and tagged ikefilter_truncated
#   (a site limit on line length may apply); never dropped, never two lines
NEAR_64K = "n" * 60000
LONG_VALUE = "x" * 70000
CORPUS: list[tuple[bytes, tuple]] = [
    (b"<133>[2026-11-26 10:00:00] EFW: IKE,IPSEC: prio=2 id=530 rev=1 localip=203.0.113.1 "
     b"localport=500 remoteip=198.51.100.7 remoteport=4500 initiator=true",
     ("event", "530", False)),
    (b"<134>1 2026-11-26T11:00:00+01:00 fw1 EFW - - - IKE: prio=1 id=1694 ip=10.0.0.9 iface=wan",
     ("event", "1694", False)),
    (b"[2026-11-26 10:00:00] EFW: IKE: prio=2 id=4242 rev=1 foo=bar", ("event", "4242", True)),
    (b"<134>[2026-11-26 10:00:00] EFW: IKE:", ("event", None, True)),
    (b"EFW: IKE: ", ("event", None, True)),
    (b'{"log": ', ("event", None, True)),
    (b"hello, not a firewall", ("pass", {"message": "hello, not a firewall"})),
    (b'{"app": "other", "n": 1}', ("pass", {"app": "other", "n": 1})),
    (b"", ("blank",)),
    (b"<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=590 rev=1\r", ("event", "590", False)),
    (b"\r", ("blank",)),
    (b'{"log": "<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=183 proto=ESP"}\r',
     ("event", "183", False)),
    (b"<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=161 reason=\"" + NEAR_64K.encode()
     + b"\"", ("event", "161", False)),
    (b"<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=419 reason=\"" + LONG_VALUE.encode()
     + b"\"", ("long", "419")),
    (b"not ours " + b"y" * 140000, ("long", None)),
    (b"EFW: IKE: id=530 localport=70000", ("event", "530", True)),
    (b"", ("blank",)),
    (b"caf\xc3\xa9 \xff\xfe", ("pass", {"message": "caf\u00e9 \ufffd\ufffd"})),
    (b"<133>Nov 26 10:00:00 fw1 EFW: IKE: prio=2 id=737 userid=bob", ("event", "737", False)),
]


def corpus_bytes(final_newline: bool = False) -> bytes:
    data = b"\n".join(raw for raw, _ in CORPUS)
    return data + b"\n" if final_newline else data


def check_output(stdout: bytes, corpus=CORPUS) -> list[dict]:
    """Exactly one JSON object per input line but a blank one, each the right one, in
    order."""
    corpus = [item for item in corpus if item[1][0] != "blank"]
    assert stdout.endswith(b"\n")
    out_lines = stdout.split(b"\n")[:-1]
    assert len(out_lines) == len(corpus)
    docs = [json.loads(line) for line in out_lines]
    for (raw, want), doc in zip(corpus, docs, strict=True):
        assert isinstance(doc, dict)
        text = raw.decode("utf-8", "replace").removesuffix("\r")
        if want[0] == "pass":
            assert doc == want[1]
            continue
        if want[0] == "long":
            check_long(text, want[1], doc)
            continue
        _, code, tagged = want
        assert doc["event"].get("code") == code, text[:200]
        assert doc["event"]["module"] == "clavister"
        has_tag = any(t.startswith("ikefilter_") for t in doc["tags"])
        assert has_tag == tagged, (text[:200], doc["tags"])
        original = doc["event"]["original"]
        if text.startswith('{"log": "'):
            assert original == json.loads(text)["log"]
        else:
            assert original == text
    return docs


def check_long(text: str, code: str | None, doc: dict) -> None:
    if "ikefilter_truncated" not in doc.get("tags", ()):
        if code is None:
            assert doc == {"message": text}
        else:
            assert doc["event"]["code"] == code
            assert doc["event"]["original"] == text
            assert not [t for t in doc["tags"] if t.startswith("ikefilter_")]
        return
    original = doc["event"]["original"]
    assert len(original) >= 65536 - 4 and text.startswith(original)
    assert "truncated" in doc["error"]["message"]
    if code is not None:
        assert doc["event"]["code"] == code


def expected_stats(stdout: bytes, corpus=CORPUS) -> tuple[int, int, int, int]:
    """in, out, dropped (the blank lines), tagged"""
    n = len(corpus)
    blank = sum(1 for _, want in corpus if want[0] == "blank")
    corpus = [item for item in corpus if item[1][0] != "blank"]
    tagged = sum(1 for _, want in corpus if want[0] == "event" and want[2])
    docs = [json.loads(line) for line in stdout.splitlines()]
    tagged += sum(
        1 for (_, want), doc in zip(corpus, docs, strict=True)
        if want[0] == "long" and "ikefilter_truncated" in doc.get("tags", ())
    )
    return n, n - blank, blank, tagged


def stats_of(stderr: bytes) -> tuple[int, ...]:
    m = re.search(rb"in=(\d+) out=(\d+) dropped=(\d+) quarantined=0 tagged=(\d+)", stderr)
    assert m, stderr
    return tuple(int(x) for x in m.groups())


# -- subprocess -------------------------------------------------------------------------------


@pytest.mark.parametrize("final_newline", [False, True])
def test_run_subprocess(final_newline):
    proc = ikefilter_cmd("run", stdin=corpus_bytes(final_newline))
    assert proc.returncode == 0, proc.stderr
    docs = check_output(proc.stdout)
    assert stats_of(proc.stderr) == expected_stats(proc.stdout)
    assert docs[0]["source"] == {"ip": "203.0.113.1", "port": 500}
    assert docs[1]["@timestamp"] == "2026-11-26T10:00:00.000Z"
    assert docs[10]["event"]["reason"] == NEAR_64K  # CORPUS[12], after two blank lines


def test_run_writes_parameter_names_elasticsearch_can_index():
    """Names with a dot or an empty segment under clavister.extra: every dot becomes ``_``;
    a rewritten name that meets one sent as written takes a suffix, never its place."""
    split = {"id": "530", "x": "1", "x.y": "2", "a..b": "3", ".a": "4", "a.": "5",
             "...": "6", "": "7", "x_y": "8", "ok-name": "9"}
    lines = [b"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=99999 rev=1 x=1 x.y=2 a..b=3",
             b"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 x=1 x.y=2 a..b=3",
             json.dumps(split).encode()]
    proc = ikefilter_cmd("run", stdin=b"\n".join(lines) + b"\n")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["clavister"]["extra"] for d in docs[:2]] == [
        {"x": "1", "x_y": "2", "a__b": "3"}] * 2
    assert docs[2]["clavister"]["extra"] == {
        "x": "1", "x_y_2": "2", "a__b": "3", "_a": "4", "a_": "5", "___": "6", "_": "7",
        "x_y": "8", "ok-name": "9"}
    assert docs[2]["event"]["code"] == "530"


def test_run_stdout_is_only_json_and_stderr_only_the_report():
    proc = ikefilter_cmd("run", stdin=corpus_bytes())
    for line in proc.stdout.decode().splitlines():
        json.loads(line)
    assert not re.search(rb"^\{", proc.stderr, re.M)
    assert proc.stderr.decode().strip().splitlines()[-1].startswith("ikefilter: INFO: in=")


def test_run_empty_input():
    proc = ikefilter_cmd("run", stdin=b"")
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert stats_of(proc.stderr) == (0, 0, 0, 0)


def test_run_files_as_arguments(tmp_path):
    first, second = CORPUS[:7], CORPUS[7:]
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"\n".join(raw for raw, _ in first) + b"\n")
    b.write_bytes(b"\n".join(raw for raw, _ in second))  # no final newline
    proc = ikefilter_cmd("run", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    check_output(proc.stdout)
    assert stats_of(proc.stderr) == expected_stats(proc.stdout)


def test_run_file_and_stdin_in_order(tmp_path):
    a = tmp_path / "a.log"
    a.write_bytes(b"\n".join(raw for raw, _ in CORPUS[:5]) + b"\n")
    stdin = b"\n".join(raw for raw, _ in CORPUS[5:]) + b"\n"
    proc = ikefilter_cmd("run", str(a), "-", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    check_output(proc.stdout)


def test_run_stats_file(tmp_path):
    stats = tmp_path / "stats.json"
    proc = ikefilter_cmd("run", "--stats", str(stats), stdin=corpus_bytes())
    assert proc.returncode == 0
    got = json.loads(stats.read_text())
    n, out, blank, tagged = expected_stats(proc.stdout)
    assert (got["in"], got["out"], got["dropped"], got["quarantined"], got["tagged"]) == (
        n, out, blank, 0, tagged,
    )
    assert got["dropped_by_rule"] == {"blank_line": blank}
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert got["passthrough"] == sum(1 for d in docs if "event" not in d)
    assert got["passthrough"] >= sum(1 for _, want in CORPUS if want[0] == "pass")


def test_run_to_a_full_disk_counts_nothing_out_and_fails_in_one_line(tmp_path):
    stats = tmp_path / "stats.json"
    gen = ikefilter_cmd("generate", "--count", "2000").stdout
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "ikefilter", "run", "--stats", str(stats)],
                              input=gen, stdout=full, stderr=subprocess.PIPE,
                              timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "ikefilter run: No space left on device" in err and "Traceback" not in err
    got = json.loads(stats.read_text())
    assert got["out"] == 0 and got["in"] == got["dropped"] > 0
    assert got["dropped_by_rule"] == {"not_written": got["in"]}


def test_run_into_a_reader_that_goes_away_counts_the_batch_it_refused(tmp_path):
    """``run | head -1``: what the closed pipe refused is counted stdout_closed, not out."""
    stats = tmp_path / "stats.json"
    gen = ikefilter_cmd("generate", "--count", "20000").stdout
    proc = subprocess.Popen([sys.executable, "-m", "ikefilter", "run", "--stats", str(stats)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(gen[:30_000])  # under a pipe's buffer: a batch or so, more to come
    proc.stdin.flush()
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(gen[30_000:])
        proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert json.loads(first)["event"]["module"] == "clavister"
    got = json.loads(stats.read_text())
    assert got["dropped_by_rule"].get("stdout_closed", 0) > 0
    assert got["in"] == got["out"] + got["dropped_by_rule"]["stdout_closed"]
    assert "Traceback" not in proc.stderr.read().decode()


def test_generate_piped_into_run():
    gen = ikefilter_cmd("generate", "--count", "50")
    assert gen.returncode == 0
    assert len(gen.stdout.splitlines()) == 50
    proc = ikefilter_cmd("run", stdin=gen.stdout)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(docs) == 50
    for doc in docs:
        assert doc["event"]["module"] == "clavister"
        assert doc["event"]["action"]
        assert doc["ecs"] == {"version": "9.5.0"}
        assert not [t for t in doc["tags"] if t.startswith("ikefilter_")]
    assert stats_of(proc.stderr) == (50, 50, 0, 0)


# -- in process -------------------------------------------------------------------------------


def run_in_process(*chunks: bytes) -> bytes:
    out = io.BytesIO()
    lines.run(Pipeline(), [io.BytesIO(c) for c in chunks], out)
    return out.getvalue()


@pytest.mark.parametrize("final_newline", [False, True])
def test_run_in_process(final_newline):
    check_output(run_in_process(corpus_bytes(final_newline)))


def test_run_in_process_several_sources():
    data = corpus_bytes(True)
    cut = data.index(b"\n", len(data) // 2) + 1
    check_output(run_in_process(data[:cut], data[cut:]))


def test_run_in_process_crlf_everywhere():
    data = b"\r\n".join(raw.removesuffix(b"\r") for raw, _ in CORPUS) + b"\r\n"
    docs = check_output(run_in_process(data))
    assert all("\r" not in json.dumps(d) for d in docs if "event" in d)


class _Trickle(io.RawIOBase):
    """A stream that hands out a few bytes per read, as a pipe may."""

    def __init__(self, data: bytes, step: int):
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        chunk = self.data[self.pos:self.pos + min(self.step, n if n > 0 else self.step)]
        self.pos += len(chunk)
        return chunk

    read = read1


@pytest.mark.parametrize("step", [1, 7, 4096, 65535, 65536, 65537])
def test_run_with_short_reads(step):
    data = corpus_bytes()
    out = io.BytesIO()
    lines.run(Pipeline(), [_Trickle(data, step)], out)
    check_output(out.getvalue())


# -- batching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 16, 65536])
@pytest.mark.parametrize("data", [
    b"", b"\n", b"\n\n", b"a", b"a\n", b"a\nb", b"a\nb\n", b"\r\n\r\n", b"ab\n\ncd\nef",
    b"x" * 100 + b"\n" + b"y" * 3,
])
def test_iter_batches_splits_exactly_on_newlines(data, chunk):
    got = [line for batch in lines.iter_batches(io.BytesIO(data), chunk) for line in batch]
    expected = data.split(b"\n")
    if data.endswith(b"\n") or data == b"":
        expected = expected[:-1]  # a final newline ends the last line; it starts none
    assert got == expected


def test_iter_batches_line_longer_than_the_chunk():
    data = b"short\n" + b"L" * 200000 + b"\nend"
    got = [line for batch in lines.iter_batches(io.BytesIO(data)) for line in batch]
    assert got == [b"short", b"L" * 200000, b"end"]
