"""A stream in the other input format is refused on proof, never on one odd first byte."""

from __future__ import annotations

import io

import msgspec
import pytest

from ikefilter import exits
from ikefilter.adapters import lines, sniff
from ikefilter.pipeline import Pipeline

LINE = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1"
STREAM = b"".join(msgspec.msgpack.encode({"log": LINE, "n": i}) for i in range(40))


def run(data: bytes, chunk: int | None = None) -> list[bytes]:
    out = io.BytesIO()
    source = io.BytesIO(data)
    if chunk is not None:  # a writer that sends one line per write
        parts = data.split(b"\n")
        source = Pieces([p + b"\n" for p in parts[:-1]] + [parts[-1]])
    lines.run(Pipeline(), [source], out)
    return out.getvalue().splitlines()


class Pieces(io.RawIOBase):
    def __init__(self, pieces: list[bytes]):
        self.pieces = [p for p in pieces if p]

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    read = read1


def test_maps_back_to_back_are_a_msgpack_stream():
    assert sniff.looks_like_msgpack(STREAM)
    assert sniff.looks_like_msgpack(STREAM[:1000])  # cut inside a record
    assert sniff.is_msgpack_stream(msgspec.msgpack.encode([{"log": LINE}, {"log": LINE}]))
    with pytest.raises(exits.Failure) as refused:
        run(STREAM)
    assert refused.value.status == exits.INPUT
    assert "add --input-format msgpack" in str(refused.value)


@pytest.mark.parametrize("chunk", [None, 1])
def test_a_line_that_is_a_msgpack_map_is_still_a_line(chunk):
    """A hostile first line shaped as records cannot stop the filter, even one whose newline
    completes a record ({"a": 10}), read alone or with the lines after it."""
    for hostile in (msgspec.msgpack.encode({"log": "x"}), b"\x81\xa1a",
                    msgspec.msgpack.encode({"a": 1}) + b"\x81\xa1b\xa5xx"):
        data = hostile + b"\n" + LINE.encode() + b"\n"
        assert not sniff.looks_like_msgpack(data[:len(hostile) + 1])
        out = run(data, chunk)
        assert len(out) == 2 and b'"code":"530"' in out[1]


def test_text_and_other_objects_are_not_msgpack_records():
    assert not sniff.is_msgpack_stream(LINE.encode() + b"\n")
    assert not sniff.is_msgpack_stream(b'{"log": "x"}\n')
    assert not sniff.is_msgpack_stream(msgspec.msgpack.encode([1, 2, 3]))
    assert not sniff.is_msgpack_stream(msgspec.msgpack.encode({1: "a"}))  # no text keys
