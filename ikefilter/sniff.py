"""What an input stream is, from its first bytes: a stream in the other format stops at once.

Fluentd's msgpack formatter and ``ikefilter run --output-format msgpack`` write maps back to
back. Read as lines, such a stream makes a handful of junk documents (a map spans lines at
random ``0x0a`` bytes); read as msgpack, lines of text make thousands (each byte an integer).
Both are a wrong ``--input-format``, said in one line before anything is written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .exits import INPUT, Failure


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


def check_files(paths: Iterable[str], input_format: str) -> None:
    """Refuse a regular file whose first bytes are in the other format, before any file is
    read: ``run a.log b.msgpack`` must not write ``a.log`` and then stop. (A pipe or a
    device cannot be peeked at: its first batch is checked as it is read.)"""
    for path in paths:
        try:
            if path == "-" or not stat.S_ISREG(os.stat(path).st_mode):
                continue
            with open(path, "rb") as f:
                head = f.read(2)
        except OSError:
            continue  # said when the file is opened to be read
        if not head:
            continue
        if input_format == "msgpack" and not is_msgpack_container(head):
            raise Failure(INPUT, f"{path}: not a msgpack stream (it does not start with a "
                          "map): text or JSON lines are read without --input-format msgpack")
        if input_format != "msgpack" and is_msgpack_container(head):
            raise Failure(INPUT, f"{path}: {_MSGPACK_AS_LINES}")


_MSGPACK_AS_LINES = ("input starts with a msgpack map or array, not a line: for a msgpack "
                     "stream, add --input-format msgpack")


def text_batches(batches: Iterator[list[bytes]], source: BinaryIO) -> Iterator[list[bytes]]:
    """``batches`` of one source, refused with an :data:`~ikefilter.exits.INPUT` failure
    when the source begins as a msgpack stream."""
    for n, batch in enumerate(batches):
        if n == 0 and batch and is_msgpack_container(batch[0][:2]):
            name = getattr(source, "name", None)
            where = f"{name}: " if isinstance(name, str) and not name.startswith("<") else ""
            raise Failure(INPUT, f"{where}{_MSGPACK_AS_LINES}")
        yield batch


def refuse_non_map(first: object) -> None:
    """A msgpack stream of records begins with a map (or an array of maps)."""
    if type(first) is not dict:
        raise Failure(INPUT, "input is not a msgpack stream: its first object is "
                      f"{type(first).__name__}, not a map (text or JSON lines are read "
                      "without --input-format msgpack)")
