"""What an input stream is, from its first bytes: a stream in the other format stops at once.

Fluentd's msgpack formatter and ``ikefilter run --output-format msgpack`` write maps back to
back. Read as lines, such a stream makes a handful of junk documents (a map spans lines at
random ``0x0a`` bytes); read as msgpack, lines of text make thousands (each byte an integer).
Both are a wrong ``--input-format``, said in one line before anything is written.

A text stream is taken for msgpack only on proof, never on one odd byte (see
:func:`looks_like_msgpack`): a hostile first line must not be able to stop the filter.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import BinaryIO

import msgspec

from ..exits import INPUT, Failure
from .batching import CHUNK
from .msgpack_framing import FrameError, iter_ends

_RECORDS_CHECKED = 16
_DECODER = msgspec.msgpack.Decoder()


def is_msgpack_container(head: bytes) -> bool:
    """``head`` starts with a msgpack map or array header that no UTF-8 text starts with.

    fixmap and fixarray (``0x80``-``0x9f``) are UTF-8 continuation bytes, never the first
    byte of text; array and map 16/32 (``0xdc``-``0xdf``) are UTF-8 lead bytes, text only
    when a continuation byte follows (their length's high byte is one only past 32,767
    entries).
    """
    if not head:
        return False
    first = head[0]
    if 0x80 <= first <= 0x9F:
        return True
    if 0xDC <= first <= 0xDF:
        return len(head) < 2 or not 0x80 <= head[1] <= 0xBF
    return False


def looks_like_msgpack(first_read: bytes) -> bool:
    """The first read of a stream (or a file's first 64 KiB) is msgpack records, not lines.

    It must frame as records up to its last complete object (:func:`is_msgpack_stream`),
    and must not end in a newline. A writer of lines hands them over whole, so a first read
    of lines ends in one, and a first line crafted to frame as a record (its newline taken
    as the last value) is still read as a line; a msgpack stream ends a read in a newline
    byte about once in 256, and is then read as lines, as it was before.
    """
    return (is_msgpack_container(first_read) and not first_read.endswith(b"\n")
            and is_msgpack_stream(first_read))


def is_msgpack_stream(head: bytes) -> bool:
    """``head``, the start of a stream, is msgpack records: its complete objects (the first
    few) are maps with text keys or arrays of them, and what follows them is the start of
    another."""
    if not is_msgpack_container(head):
        return False
    pos = checked = 0
    try:
        for end in iter_ends(head, max_object=len(head) + 1, partial=True):
            try:
                record = _DECODER.decode(head[pos:end])
            except (msgspec.DecodeError, UnicodeDecodeError, TypeError):
                # (TypeError: a map key that is a map or an array, before msgspec 0.19)
                return False
            if not _is_record(record):
                return False
            pos, checked = end, checked + 1
            if checked == _RECORDS_CHECKED:
                return True
    except FrameError:
        return False
    return pos == len(head) or (checked > 0 and is_msgpack_container(head[pos:pos + 2]))


def _is_record(obj: object) -> bool:
    if type(obj) is list:  # Fluentd's msgpack parser takes an array of maps too
        return bool(obj) and all(_is_map(item) for item in obj)
    return _is_map(obj)


def _is_map(obj: object) -> bool:
    return type(obj) is dict and bool(obj) and all(type(k) is str for k in obj)


def check_files(paths: Iterable[str], input_format: str) -> None:
    """Refuse an input that is not there or is a directory, and a regular file whose first
    bytes are in the other format, before any file is read: ``run a.log b.msgpack`` must not
    write ``a.log`` and then stop. (A pipe or a device cannot be peeked at: its first batch
    is checked as it is read.)"""
    for path in paths:
        if path == "-":
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise Failure(INPUT, f"{path}: no such file") from None
        except OSError:
            continue  # said when the file is opened to be read
        if stat.S_ISDIR(mode):
            raise Failure(INPUT, f"{path}: is a directory")
        if not stat.S_ISREG(mode):
            continue  # (devices and pipes are inputs too: /dev/stdin, <(...))
        try:
            with open(path, "rb") as f:
                head = f.read(CHUNK)
        except OSError:
            continue  # said when the file is opened to be read
        if not head:
            continue
        if input_format == "msgpack" and not is_msgpack_container(head):
            raise Failure(INPUT, f"{path}: not a msgpack stream (it does not start with a "
                          "map): text or JSON lines are read without --input-format msgpack")
        if input_format != "msgpack" and looks_like_msgpack(head):
            raise Failure(INPUT, f"{path}: {_MSGPACK_AS_LINES}")


_MSGPACK_AS_LINES = ("input starts with a msgpack map or array, not a line: for a msgpack "
                     "stream, add --input-format msgpack")


class TextSource:
    """A byte stream read as lines, refused with an :data:`~ikefilter.exits.INPUT` failure
    when its first read is a msgpack stream; reads pass through unchanged otherwise."""

    def __init__(self, source: BinaryIO):
        self._source = source
        self._read = getattr(source, "read1", source.read)
        self._first = True

    def read1(self, n: int = -1) -> bytes:
        data = self._read(n)
        if self._first and data:
            self._first = False
            if looks_like_msgpack(data):
                name = getattr(self._source, "name", None)
                where = f"{name}: " if isinstance(name, str) and not name.startswith("<") \
                    else ""
                raise Failure(INPUT, f"{where}{_MSGPACK_AS_LINES}")
        return data

    read = read1


def refuse_non_map(first: object) -> None:
    """A msgpack stream of records begins with a map (or an array of maps)."""
    if type(first) is not dict:
        raise Failure(INPUT, "input is not a msgpack stream: its first object is "
                      f"{type(first).__name__}, not a map (text or JSON lines are read "
                      "without --input-format msgpack)")
