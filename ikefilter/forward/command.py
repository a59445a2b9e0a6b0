"""``ikefilter forward``: a Fluent Forward hop that normalizes what passes through it.

Fluent Bit and Fluentd reach ikefilter through their ``forward`` output; ikefilter passes
the ECS documents on to the next forward hop (``--upstream``, e.g. Fluent Bit's or Fluentd's
``in_forward``, or Vector's ``fluent`` source) or writes them as JSON lines (``--output``).
"""

from __future__ import annotations

import argparse
import logging
import os

from .. import app
from ..pipeline import DEFAULT_SOURCE_KEYS

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


def address(text: str) -> tuple[str, int]:
    from .server import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    p = subparsers.add_parser("forward", help=cmd_forward.__doc__,
                              description=cmd_forward.__doc__)
    p.add_argument("--listen", type=address, required=True, metavar="HOST:PORT",
                   help="address to accept forward connections on (port 0: any free port)")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--output", metavar="FILE",
                    help="append the documents as JSON lines to FILE ('-': stdout)")
    to.add_argument("--upstream", type=address, metavar="HOST:PORT",
                    help="pass the documents on to this forward server (msgpack, acked)")
    p.add_argument("--shared-key-env", metavar="VAR",
                   help="require clients to authenticate with the shared key held in "
                        "environment variable VAR")
    p.add_argument("--upstream-shared-key-env", metavar="VAR",
                   help="the shared key the upstream asks for, from environment variable VAR")
    p.add_argument("--tag", help="send every event upstream with this tag (default: as received)")
    p.add_argument("--source-key", action="append", metavar="KEY",
                   help="record key holding the raw line (repeatable; default: "
                        + ", ".join(DEFAULT_SOURCE_KEYS) + ")")
    p.add_argument("--max-frame", type=size, default=None, metavar="BYTES",
                   help="close a connection that sends a larger frame (default 16M)")
    p.add_argument("--idle-timeout", type=float, default=300.0, metavar="S",
                   help="close a connection silent this long, in seconds (default 300)")
    app.add_pipeline_options(p)
    p.set_defaults(func=cmd_forward)


def _secret(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise SystemExit(f"ikefilter forward: {option}: environment variable {var} is not set")
    return value


def cmd_forward(args: argparse.Namespace) -> int:
    """Receive Fluent Forward traffic, normalize it, pass it on (forward or JSON lines)."""
    from . import server

    options = {
        "listen": args.listen,
        "shared_key": _secret(args.shared_key_env, "--shared-key-env"),
        "upstream_shared_key": _secret(args.upstream_shared_key_env,
                                       "--upstream-shared-key-env"),
        "tag": args.tag,
        "idle_timeout": args.idle_timeout if args.idle_timeout > 0 else None,
    }
    if args.output is not None:
        options["output"] = args.output
    else:
        options["upstream"] = args.upstream
    if args.max_frame is not None:
        options["max_frame"] = args.max_frame
    overrides = {"source_keys": args.source_key} if args.source_key else {}
    pipeline = app.make_pipeline(args, **overrides)
    try:
        return server.run(pipeline, **options)
    finally:
        app.report_stats(pipeline, args)
