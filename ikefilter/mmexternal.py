"""``ikefilter mmexternal``: the child process behind rsyslog's ``mmexternal`` action.

rsyslog writes one JSON object per line (``interface.input="fulljson"``) and reads exactly
one reply line per input, in order, holding only what changes:

- ``{"$!": {...}}``: the ECS document, as the message's ``$!`` variables;
- ``{}`` for a message that is not a Clavister line (it goes on unchanged);
- ``{"$!": {"ikefilter": {"dropped": true}}}`` for an event a site rule dropped or that went
  to the quarantine, so the ruleset can ``stop`` it instead of writing the raw line anywhere.

rsyslog reads the child's stderr through the same pipe as its stdout: one stray byte there
and it reports an invalid reply. So stderr is pointed at the log file (``--log-file``) or at
``/dev/null`` before anything else runs, every exception is caught, and a line that could
not be processed is still answered with ``{}``.

Lines already waiting on stdin are processed as one batch (one ``read`` of what is there,
never a wait for more), and the replies are written and flushed together.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import msgspec

from . import app

log = logging.getLogger("ikefilter")

CHUNK = 65536
EMPTY = b"{}\n"
DROPPED = b'{"$!":{"ikefilter":{"dropped":true}}}\n'


def register(subparsers) -> None:
    p = subparsers.add_parser("mmexternal", help=cmd_mmexternal.__doc__,
                              description=cmd_mmexternal.__doc__)
    p.add_argument("--log-file", metavar="FILE",
                   help="append log messages here (default: none; stderr is never written)")
    app.add_pipeline_options(p)
    p.set_defaults(func=cmd_mmexternal)


def cmd_mmexternal(args: argparse.Namespace) -> int:
    """Answer rsyslog mmexternal (fulljson) with the ECS document as $! variables."""
    _silence_stderr(getattr(args, "log_file", None))
    try:
        pipeline = app.make_pipeline(args)
    except (Exception, SystemExit):
        # A broken site config: answer {} for everything rather than stall rsyslog.
        log.exception("cannot build the pipeline; passing every message unchanged")
        pipeline = None
    try:
        serve(pipeline, sys.stdin.fileno(), sys.stdout.fileno())
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


def serve(pipeline, fd_in: int, fd_out: int) -> None:
    """Read lines from ``fd_in`` until EOF; write one reply per line to ``fd_out``."""
    rest = b""
    while True:
        data = os.read(fd_in, CHUNK)
        if not data:
            break
        data = rest + data if rest else data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        _write_all(fd_out, b"".join(replies(pipeline, data[:cut].split(b"\n"))))
    if rest:
        _write_all(fd_out, b"".join(replies(pipeline, [rest])))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_encoder = msgspec.json.Encoder()


def replies(pipeline, lines: list[bytes]) -> list[bytes]:
    """One reply line per input line, whatever happens."""
    if pipeline is None:
        return [EMPTY] * len(lines)
    try:
        return [_reply(item) for item in pipeline.process_lines(lines)]
    except Exception:
        log.exception("batch of %d lines failed; retrying one by one", len(lines))
    out = []
    for line in lines:
        try:
            out.append(_reply(pipeline.process_lines([line])[0]))
        except Exception:
            log.exception("line failed, passed unchanged: %.200r", line)
            out.append(EMPTY)
    return out


def _reply(item) -> bytes:
    if item is None:
        return DROPPED
    if type(item) is dict:
        return EMPTY
    return b'{"$!":' + _encoder.encode(item) + b"}\n"
