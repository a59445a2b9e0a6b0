"""``ikefilter forward``: a Fluent Forward hop that normalizes what passes through it.

Fluent Bit and Fluentd reach ikefilter through their ``forward`` output; ikefilter passes
the ECS documents on to the next forward hop (``--upstream``, e.g. Fluent Bit's or Fluentd's
``in_forward``, or Vector's ``fluent`` source) or writes them as JSON lines (``--output``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re

from ... import app, exits
from ...record import DEFAULT_SOURCE_KEYS
from .entries import DEFAULT_UPSTREAM_MAX_FRAME
from .framing import DEFAULT_MAX_FRAME
from .limits import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_OBJECTS,
)

log = logging.getLogger("ikefilter")

_SIZE_UNITS = {"": 1, "K": 1024, "KI": 1024, "M": 1024**2, "MI": 1024**2, "G": 1024**3,
               "GI": 1024**3}


def size(text: str) -> int:
    """``16777216``, ``64K``, ``16M`` or ``16MiB`` as a number of bytes."""
    t = text.strip().upper().removesuffix("B")
    digits = t.rstrip("KMGI")
    unit = t[len(digits):]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"expected a size like 16M, got {text!r}")
    return int(digits) * _SIZE_UNITS[unit]


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` into ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or default_host, int(port)


def address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _RefuseKey(argparse.Action):
    """``--shared-key VALUE``: refused without quoting the value (argv is visible in ps)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string}: a key is never given on the command line; use "
                     f"{option_string}-env VAR or {option_string}-file FILE")


def register(subparsers) -> None:
    # no abbreviations: "--shared-key SECRET" must not pass for --shared-key-env and end up
    # quoted in an error message
    p = subparsers.add_parser("forward", help=cmd_forward.__doc__,
                              description=cmd_forward.__doc__, allow_abbrev=False)
    p.add_argument("--listen", type=address, required=True, metavar="HOST:PORT",
                   help="address to accept forward connections on (port 0: any free port)")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--output", metavar="FILE",
                    help="append the documents as JSON lines to FILE ('-': stdout)")
    to.add_argument("--upstream", type=address, metavar="HOST:PORT",
                    help="pass the documents on to this forward server (msgpack, acked)")
    for option, what in (("--shared-key", "the shared key clients must authenticate with"),
                         ("--upstream-shared-key", "the shared key the upstream asks for")):
        key = p.add_mutually_exclusive_group()
        key.add_argument(f"{option}-env", metavar="VAR",
                         help=f"{what}, from environment variable VAR")
        key.add_argument(f"{option}-file", metavar="FILE", help="the same, read from FILE")
        p.add_argument(option, action=_RefuseKey, help=argparse.SUPPRESS)
    p.add_argument("--upstream-max-frame", type=int, default=DEFAULT_UPSTREAM_MAX_FRAME,
                   metavar="BYTES",
                   help="largest payload of a frame sent upstream (default "
                        f"{DEFAULT_UPSTREAM_MAX_FRAME}: under Fluent Bit's default "
                        "Buffer_Max_Size); a chunk's documents go in as many frames as "
                        "that takes")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="accept only TLS (1.2+) connections, with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM",
                   help="private key of --tls-cert (default: in the --tls-cert file)")
    p.add_argument("--upstream-tls", action="store_true",
                   help="speak TLS to the upstream, checking its certificate and name")
    p.add_argument("--upstream-ca", metavar="PEM",
                   help="CA certificates to check the upstream's with (implies --upstream-tls;"
                        " default: the system's)")
    p.add_argument("--tag", help="send every event upstream with this tag (default: as received)")
    p.add_argument("--source-key", action="append", metavar="KEY",
                   help="record key holding the raw line (repeatable; default: "
                        + ", ".join(DEFAULT_SOURCE_KEYS) + ")")
    p.add_argument("--max-frame", type=size, default=None, metavar="BYTES",
                   help="close a connection that sends a larger frame (default "
                        f"{DEFAULT_MAX_FRAME // 2**20}M)")
    p.add_argument("--max-frame-objects", type=int, default=DEFAULT_MAX_OBJECTS, metavar="N",
                   help="close a connection that sends a frame decoding into more objects "
                        f"(arrays, maps, keys, values; default {DEFAULT_MAX_OBJECTS})")
    p.add_argument("--max-frame-events", type=int, default=DEFAULT_MAX_EVENTS, metavar="N",
                   help=f"close a connection that sends a frame of more events (default "
                        f"{DEFAULT_MAX_EVENTS})")
    p.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help="connections served at once; past it the one idle longest is closed "
                        "(default: the descriptor limit less 64)")
    p.add_argument("--write-timeout", type=float, default=DEFAULT_FRAME_TIMEOUT, metavar="S",
                   help="close a connection that leaves its acks unread this long, in seconds "
                        f"(default {DEFAULT_FRAME_TIMEOUT:g})")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="S",
                   help="close a connection silent this long, in seconds (default "
                        f"{DEFAULT_IDLE_TIMEOUT:g})")
    p.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT, metavar="S",
                   help="on SIGTERM, how long in-flight frames may take to be written or acked "
                        f"upstream, in seconds (default {DEFAULT_DRAIN_TIMEOUT:g})")
    p.add_argument("--frame-timeout", type=float, default=DEFAULT_FRAME_TIMEOUT, metavar="S",
                   help="close a connection whose frame is not complete this long after it "
                        f"began, in seconds (default {DEFAULT_FRAME_TIMEOUT:g})")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N server processes on the one port (SO_REUSEPORT); the kernel "
                        "spreads connections over them (default 1)")
    app.add_pipeline_options(p)
    p.set_defaults(func=cmd_forward)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _secret(var: str | None, file: str | None, option: str) -> str | bytes | None:
    """The key from environment variable ``var`` or ``file``; errors never quote a value."""
    if file is not None:
        try:
            with open(file, "rb") as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise exits.Failure(exits.INPUT, f"{option}-file: cannot read {file} "
                                f"({exc.strerror or type(exc).__name__})") from None
        if not value:
            raise exits.Failure(exits.INPUT, f"{option}-file: {file} is empty")
        return value  # bytes, as read: the handshake hashes them as they are
    if var is None:
        return None
    if not _ENV_NAME.match(var):
        # perhaps the key itself was given: never echo it
        raise exits.Failure(exits.USAGE, f"{option}-env: expects the name of an "
                            "environment variable (the key itself is never given on the "
                            "command line)")
    value = os.environ.get(var)
    if not value:
        raise exits.Failure(exits.USAGE, f"{option}-env: environment variable {var} is not set")
    return value


def _check_tls(args: argparse.Namespace) -> None:
    """Load the TLS files once before anything starts, for a one-line error."""
    from .tls import client_tls_context, server_tls_context

    try:
        if args.tls_key is not None and args.tls_cert is None:
            raise ValueError("--tls-key needs --tls-cert")
        if args.tls_cert is not None:
            server_tls_context(args.tls_cert, args.tls_key)
            _warn_if_open(args.tls_key or args.tls_cert)
        if args.upstream_tls or args.upstream_ca:
            if args.upstream is None:
                raise ValueError("--upstream-tls and --upstream-ca need --upstream")
            client_tls_context(args.upstream_ca)
    except ValueError as exc:
        raise exits.Failure(exits.USAGE, str(exc)) from None


def _warn_if_open(path: str) -> None:
    """A private key readable by group or others is used, with a warning."""
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode
        if mode & 0o077:
            log.warning("TLS private key %s is open to group or others (mode %04o): "
                        "chmod 600 it", path, mode & 0o777)


def cmd_forward(args: argparse.Namespace) -> int:
    """Receive Fluent Forward traffic, normalize it, pass it on (forward or JSON lines)."""

    options = {
        "listen": args.listen,
        "shared_key": _secret(args.shared_key_env, args.shared_key_file, "--shared-key"),
        "upstream_shared_key": _secret(args.upstream_shared_key_env,
                                       args.upstream_shared_key_file, "--upstream-shared-key"),
        "tag_rewrite": args.tag,
        "upstream_max_frame": max(args.upstream_max_frame, 1024),
        "idle_timeout": args.idle_timeout if args.idle_timeout > 0 else None,
        "frame_timeout": args.frame_timeout if args.frame_timeout > 0 else None,
        "drain_timeout": max(args.drain_timeout, 0.0),
        "write_timeout": args.write_timeout if args.write_timeout > 0 else None,
        "max_objects": max(args.max_frame_objects, 16),
        "max_events": max(args.max_frame_events, 1),
        "max_connections": args.max_connections,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "upstream_tls": bool(args.upstream_tls or args.upstream_ca),
        "upstream_ca": args.upstream_ca,
    }
    _check_tls(args)
    if args.output is not None:
        options["output"] = args.output
    else:
        options["upstream"] = args.upstream
    if args.max_frame is not None:
        options["max_frame"] = args.max_frame
    if args.workers < 1:
        raise exits.Failure(exits.USAGE, "--workers must be 1 or more")
    if args.workers > 1:
        if args.listen[1] == 0:
            raise exits.Failure(exits.USAGE, "--workers needs a fixed port, not 0")
        if args.output == "-":
            raise exits.Failure(exits.USAGE, "--workers needs --output FILE or --upstream: "
                                "workers sharing stdout could interleave their lines")
        options["reuse_port"] = True
        return _run_workers(args, options)
    return _serve(args, options)


def _serve(args: argparse.Namespace, options: dict) -> int:
    # Here, not above: registering the command must not load asyncio and ssl.
    from . import service

    overrides = {"source_keys": args.source_key} if args.source_key else {}
    pipeline = app.make_pipeline(args, **overrides)
    forward_stats = None
    try:
        with exits.writing():  # the --output file, the port to listen on
            forward_stats = service.run(pipeline, **options)
        stats = pipeline.stats
        if forward_stats.invalid:
            # Entries that are not [time, map] never reach the pipeline: count them in, and
            # dropped, so the counts still add up.
            stats.in_ += forward_stats.invalid
            stats.dropped += forward_stats.invalid
            stats.dropped_by_rule["invalid_forward_entry"] = forward_stats.invalid
        # out counts what was written or acked by the next hop: what the output refused or
        # the next hop never acked is counted dropped, under the reason
        stats.unwritten(forward_stats.not_written, "not_written")
        stats.unwritten(forward_stats.undelivered, "undelivered")
        if forward_stats.not_written:
            log.error("%d events were not written (the output refused them) and not acked",
                      forward_stats.not_written)
        return 1 if forward_stats.undelivered or forward_stats.not_written else 0
    finally:
        app.report_stats(pipeline, args, forward_stats)


def _run_workers(args: argparse.Namespace, options: dict) -> int:
    """Fork ``--workers`` servers on one port; SIGTERM/SIGINT reach every one, each drains.

    Each worker builds its own pipeline, appends whole batches to the one ``--output`` file
    (O_APPEND) or keeps its own upstream connection, and writes its counts to
    ``--stats FILE.N`` (N = 1..workers).
    """
    import signal

    app.check_stats(args)  # once, here: each worker's FILE.N lies in the same directory
    stats = args.stats
    children: list[int] = []
    for n in range(1, args.workers + 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if stats:
                    args.stats = f"{stats}.{n}"
                code = _serve(args, options)
            except exits.Failure as exc:
                code = exc.status
                log.error("%s", exc)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                if not isinstance(exc.code, int) and exc.code:
                    log.error("%s", exc.code)
            except BaseException:
                log.exception("forward worker %d failed", n)
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)

    def forward_signal(signum, _frame) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward_signal)
    status = 0
    for pid in children:
        while True:
            try:
                _, raw = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(raw)
        status = status or (code if code > 0 else 0 if code == 0 else 1)
    return status
