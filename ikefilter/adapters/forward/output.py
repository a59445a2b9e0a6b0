"""JSON lines to a file or stdout, for a forward server with no next hop."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger(__name__)


class FileOutput:
    """JSON lines appended to a file or stdout, flushed before the batch counts as written.

    Never a torn line: a file that ends in part of a line (a run killed mid-write) gets its
    line ended before the first batch, and a batch whose write fails (a full disk) is cut
    off again, so the next one starts on a line of its own (the failed batch is not acked:
    the sender sends it again).
    """

    def __init__(self, target: str | os.PathLike) -> None:
        if target == "-":
            self._file = sys.stdout.buffer
            self._owned = False
        else:
            self._file = open(target, "ab")  # closed by close()
            self._owned = True
            end = self._file.seek(0, os.SEEK_END)
            if end:
                with open(target, "rb") as f:
                    f.seek(end - 1)
                    torn = f.read(1) != b"\n"
                if torn:
                    log.warning("%s ended in part of a line (a run stopped mid-write): "
                                "ending that line before the first batch", target)
                    self._file.write(b"\n")
                    self._file.flush()

    def __call__(self, lines: bytes) -> None:
        start = self._file.tell() if self._owned else None
        try:
            self._file.write(lines)
            self._file.flush()
        except OSError:
            if start is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._file = _cut_back(self._file, start)
            raise

    def close(self) -> None:
        if self._owned:
            self._file.close()


def _cut_back(file, size: int):
    """``file`` (opened to append) cut back to ``size`` bytes: what a failed write left of a
    batch goes; a new handle, since the old one may still hold the unwritten bytes."""
    name = file.name
    with contextlib.suppress(OSError):
        file.close()
    os.truncate(name, size)
    return open(name, "ab")  # noqa: SIM115 - replaces the handle closed above
