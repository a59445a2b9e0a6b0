"""JSON lines to a file or stdout, for a forward server with no next hop."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import stat
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from .. import batching

log = logging.getLogger(__name__)

_json_encoder = msgspec.json.Encoder()


class NotWritten(Exception):
    """The output refused a batch (a full disk, a closed pipe): it is not acked."""


async def write_lines(write: Callable[[bytes], Any], outputs: list[Any], stats,
                      count_unencodable: Callable[[list], None] | None = None) -> None:
    """Write a batch's outputs as JSON lines with ``write`` and count them in ``stats`` (a
    :class:`~.contract.ForwardStats`); None outputs are dropped ones. The outputs JSON
    cannot carry, written as tagged failure events, are also told to ``count_unencodable``
    (the processor's own counts: :meth:`ikefilter.pipeline.Pipeline.count_unencodable`).

    :raises NotWritten: the output refused them; they are counted ``not_written``.
    """
    kept = [item for item in outputs if item is not None]
    stats.dropped += len(outputs) - len(kept)
    if not kept:
        return
    lines, bad = batching.encode_lines(_json_encoder, kept)
    stats.unencodable += len(bad)
    if bad and count_unencodable is not None:
        count_unencodable(bad)
    try:
        result = write(lines)
        if inspect.isawaitable(result):
            await result
    except OSError as exc:
        # not acked: a client that waits for acks sends the chunk again
        stats.not_written += len(kept)
        raise NotWritten(f"output not written ({exc.strerror or exc}): "
                         f"{len(kept)} events not acked") from None
    stats.emitted += len(kept)


class FileOutput:
    """JSON lines appended to a file or stdout, flushed before the batch counts as written.

    Never a torn line: a file that ends in part of a line (a run killed mid-write) has that
    part moved aside before anything is appended, to ``FILE.torn`` (one fragment a line,
    mode 0600), counted in :attr:`torn` and logged; a batch whose write fails (a full disk)
    is cut off again, so the next one starts on a line of its own (the failed batch is not
    acked: the sender sends it again). A file that cannot be cut back is repaired the same
    way before the next write.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.torn = 0  # torn tails moved aside
        self._check = False
        if target == "-":
            self._file = sys.stdout.buffer
            self._owned = False
        else:
            self._file = open(target, "ab")  # closed by close()
            # only a regular file can be cut back; a device or a pipe is written as it is
            self._owned = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
            if self._owned:
                self._repair()

    def __call__(self, lines: bytes) -> None:
        if self._check:
            self._repair()
        start = self._file.tell() if self._owned else None
        try:
            self._file.write(lines)
            self._file.flush()
        except OSError:
            if start is not None:
                self._check = True
                with contextlib.suppress(OSError, ValueError):
                    self._file = _cut_back(self._file, start)
                    self._check = False
            raise

    def _repair(self) -> None:
        """Move a torn last line aside to ``FILE.torn`` and cut the file back to its last
        whole line."""
        name = self._file.name
        end = self._file.seek(0, os.SEEK_END)
        if not end:
            return
        with open(name, "rb") as f:
            back = 0
            while True:  # the last newline, read backwards a block at a time
                back = min(back + 65536, end)
                f.seek(end - back)
                block = f.read(back)
                cut = block.rfind(b"\n")
                if cut >= 0 or back == end:
                    break
            keep = end - back + cut + 1
            if keep == end:
                return
            f.seek(keep)
            fragment = f.read()
        aside = f"{name}.torn"
        fd = os.open(aside, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as out:
            out.write(fragment + b"\n")
        self._file = _cut_back(self._file, keep)
        self.torn += 1
        log.warning("%s ended in part of a line (%d bytes, a run stopped mid-write or a "
                    "failed write): moved aside to %s", name, len(fragment), aside)

    def close(self) -> None:
        if self._file is not sys.stdout.buffer:
            with contextlib.suppress(OSError):
                self._file.close()


def _cut_back(file, size: int):
    """``file`` (opened to append) cut back to ``size`` bytes: what a failed write left of a
    batch goes; a new handle, since the old one may still hold the unwritten bytes."""
    name = file.name
    with contextlib.suppress(OSError):
        file.close()
    try:
        os.truncate(name, size)
    finally:
        file = open(name, "ab")  # noqa: SIM115 - replaces the handle closed above
    return file
