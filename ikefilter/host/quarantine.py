"""The dead-letter file for events a redaction plugin failed on."""

from __future__ import annotations

import os
import stat

import msgspec

from ..config import ConfigError


class QuarantineRecord(msgspec.Struct, rename={"timestamp": "@timestamp"}):
    """One line of the quarantine file: an event a redaction plugin failed on."""

    timestamp: str
    stage: str
    plugin: str
    error: str
    code: str | None
    original: str | None


class Quarantine:
    """The dead-letter file for events that could not be redacted.

    It holds each event's original line, unredacted, so an operator can replay it once the
    plugin is fixed: the file is created ``0600`` and refused when it is readable by group
    or others. It is never the output stream.
    """

    def __init__(self, path: str):
        self.path = path
        self.encoder = msgspec.json.Encoder()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"quarantine file {path}: cannot open ({exc.strerror})") from None
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.close(fd)
            raise ConfigError(
                f"quarantine file {path} is open to group or others (mode {mode & 0o777:04o});"
                f" it holds unredacted lines: chmod 600 it"
            )
        self.file = os.fdopen(fd, "ab")

    def write(self, records: list[QuarantineRecord]) -> None:
        self.file.write(self.encoder.encode_lines(records))
        self.file.flush()

    def close(self) -> None:
        self.file.close()
