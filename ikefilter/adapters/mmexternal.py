"""``ikefilter mmexternal``: the child process behind rsyslog's ``mmexternal`` action.

rsyslog writes one JSON object per line (``interface.input="fulljson"``) and reads exactly
one reply line per input, in order, holding only what changes:

- for an event, the ECS document: with ``--reply variables`` (the default),
  ``{"$!": {...}}``, the document as the message's ``$!`` variables; with ``--reply text``,
  ``{"$!": {"ikefilter": {"json": "..."}}}``, the document as JSON text in one variable,
  which rsyslog neither parses into variables nor serializes back;
- ``{}`` for a message that is not a Clavister line (it goes on unchanged);
- ``{"$!": {"ikefilter": {"dropped": true}}}`` for an event a site rule dropped or that went
  to the quarantine, so the ruleset can ``stop`` it instead of writing the raw line anywhere.

rsyslog reads the child's stderr through the same pipe as its stdout: one stray byte there
and it reports an invalid reply. So stderr is pointed at the log file (``--log-file``) or at
``/dev/null`` before anything else runs, every exception is caught, and a line that could
not be processed is still answered with ``{}``.

rsyslog writes one message and waits for its reply before it writes the next (mmexternal is
half duplex), so each message costs a pipe round trip, and the per-message path is kept
short: one ``read``, the record decoded once with a prebuilt decoder and handed to the
pipeline as a record, one ``write`` of the reply (an unbuffered write: no flush of its own).
Lines already waiting on stdin (several messages in one ``read``, as a test or a replay
sends them) are processed as one batch and their replies written together.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import msgspec

from .. import app, exits
from .batching import iter_batches

log = logging.getLogger("ikefilter")

EMPTY = b"{}\n"
DROPPED = b'{"$!":{"ikefilter":{"dropped":true}}}\n'
REPLIES = ("variables", "text")


def register(subparsers) -> None:
    p = subparsers.add_parser("mmexternal", help=cmd_mmexternal.__doc__,
                              description=cmd_mmexternal.__doc__)
    p.add_argument("--log-file", metavar="FILE",
                   help="append log messages here (default: none; stderr is never written)")
    p.add_argument("--reply", choices=REPLIES, default="variables",
                   help="the document as $! variables (default), or as JSON text in"
                        " $!ikefilter!json, which rsyslog keeps and writes as one string")
    app.add_pipeline_options(p)
    # stderr is rsyslog's reply pipe: an option mistake is said in --log-file instead
    p.set_defaults(func=cmd_mmexternal, report_usage=exits.log_file_reporter("--log-file"))


def cmd_mmexternal(args: argparse.Namespace) -> int:
    """Answer rsyslog mmexternal (fulljson) with the ECS document as $! variables."""
    _silence_stderr(getattr(args, "log_file", None))
    try:
        pipeline = app.make_pipeline(args)
    except (Exception, SystemExit) as exc:
        if isinstance(exc, exits.Failure) and exc.status == exits.OUTPUT:
            raise  # a --stats file it could not write: refused as every command refuses it
        # A broken site config: answer {} for everything rather than stall rsyslog.
        log.exception("cannot build the pipeline; passing every message unchanged")
        pipeline = None
    try:
        serve(pipeline, sys.stdin.fileno(), sys.stdout.fileno(),
              getattr(args, "reply", "variables"))
    except BrokenPipeError:
        pass
    finally:
        if pipeline is not None:
            try:
                app.report_stats(pipeline, args)
            except Exception:
                log.exception("cannot write the stats")
    return 0


def _silence_stderr(log_file: str | None) -> None:
    """Point fd 2 at the log file or /dev/null, and logging at the same place or nowhere."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    target = os.open(log_file or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(target, 2)
    os.close(target)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    if log_file:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s ikefilter[%(process)d]: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    else:
        root.addHandler(logging.NullHandler())


def serve(pipeline, fd_in: int, fd_out: int, reply: str = "variables") -> None:
    """Read lines from ``fd_in`` until EOF; write one reply per line to ``fd_out``."""
    answer = Answers(pipeline, reply)
    one, many = answer.one, answer.many
    with open(fd_in, "rb", buffering=0, closefd=False) as stream:
        for batch in iter_batches(stream, max_line=None if pipeline is None else pipeline.max_line):
            # rsyslog sends one message and waits for its reply
            _write_all(fd_out, one(batch[0]) if len(batch) == 1 else b"".join(many(batch)))


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a pipe takes a reply whole unless it is larger than its buffer
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


class Answers:
    """The replies of one child, with what each message needs built once."""

    def __init__(self, pipeline, reply: str = "variables"):
        if reply not in REPLIES:
            raise ValueError(f"reply must be one of {', '.join(REPLIES)}, not {reply!r}")
        self.pipeline = pipeline
        self._document = self._text if reply == "text" else self._variables
        if pipeline is None:
            return
        self.process_lines = pipeline.process_lines
        self.process_records = pipeline.process_records
        self.line_record = pipeline.line_record
        self.encode = msgspec.json.Encoder().encode
        self.source_keys = tuple(pipeline.source_keys)

    def record(self, line: bytes) -> dict | None:
        """The JSON record the pipeline reads ``line`` as (:meth:`Pipeline.line_record`), when
        it holds its line under a source key. None for anything else (not a JSON record, or
        split pairs): that goes to the pipeline as the line it is, so the document keeps the
        line as sent."""
        record = self.line_record(line)
        if record is not None:
            for key in self.source_keys:
                if type(record.get(key)) is str:
                    return record
        return None

    def one(self, line: bytes) -> bytes:
        """The reply to one message, whatever happens."""
        if self.pipeline is None:
            return EMPTY
        try:
            record = self.record(line)
            if record is not None:
                return self.reply(self.process_records([record])[0])
            return self.reply(self.process_lines([line])[0])
        except Exception:
            log.exception("line failed, passed unchanged: %.200r", line)
            return EMPTY

    def many(self, lines: list[bytes]) -> list[bytes]:
        """One reply per line, whatever happens: the lines as one batch."""
        if self.pipeline is None:
            return [EMPTY] * len(lines)
        try:
            return [self.reply(item) for item in self.process_lines(lines)]
        except Exception:
            log.exception("batch of %d lines failed; retrying one by one", len(lines))
        return [self.one(line) for line in lines]

    def reply(self, item) -> bytes:
        """The reply to rsyslog for one output: a dropped event's, a record passed through
        as it came (nothing to change), or the document as the ``--reply`` form wants it."""
        if item is None:
            return DROPPED
        if type(item) is dict:
            return EMPTY
        return self._document(self.encode(item))

    @staticmethod
    def _variables(document: bytes) -> bytes:
        """``--reply variables``: the document as the message's ``$!`` variables."""
        return b'{"$!":' + document + b"}\n"

    def _text(self, document: bytes) -> bytes:
        """``--reply text``: the document as JSON text in ``$!ikefilter!json``."""
        text = self.encode(document.decode("utf-8"))
        return b'{"$!":{"ikefilter":{"json":' + text + b"}}}\n"

