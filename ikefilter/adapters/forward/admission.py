"""Who gets served: the connection cap (read from the descriptor limit) and the shared-key
handshake a client must pass first."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ..msgpack_framing import FrameError
from .framing import FrameSplitter
from .handshake import HandshakeError, encode_helo, encode_pong, parse_ping
from .lenient import decode_message

_HANDSHAKE_FRAME = 64 * 1024

# Descriptors kept back from the connections: stdio, the listening sockets, the event
# loop's own, the output file, the next hop, the quarantine, a log file.
_RESERVED_FDS = 64


def default_max_connections() -> int:
    """Connections accepted at once by default: the descriptor limit (RLIMIT_NOFILE) less
    the descriptors the process needs for itself."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(soft - _RESERVED_FDS, 8)


class ConnectionCap:
    """``max_connections`` for one server: at the cap, the connection idle longest (waiting
    for a frame, none begun) is closed for a new one; with none idle, the new one is
    refused. Also the event loop's handler for running out of descriptors.

    :param connections: the server's live connection tasks (read, never changed here).
    :param stats: the server's :class:`~.contract.ForwardStats`.
    """

    def __init__(self, limit: int, connections: set, stats, log: logging.Logger) -> None:
        self.limit = limit
        self.connections = connections
        self.stats = stats
        self.log = log
        self.idle: dict = {}  # task -> loop time since it waits with no frame begun
        self._previous = None

    def admit(self, peer: object) -> bool:
        """Whether a new connection from ``peer`` may be served."""
        if len(self.connections) < self.limit:
            return True
        if self.idle:
            oldest = min(self.idle, key=self.idle.__getitem__)
            del self.idle[oldest]
            oldest.cancel()
            self.stats.evicted += 1
            self.log.warning("at --max-connections %d: closed the connection idle longest "
                             "for one from %s", self.limit, peer)
            return True
        self.stats.refused += 1
        self.log.warning("at --max-connections %d, none idle: refused a connection from %s",
                         self.limit, peer)
        return False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the loop's exception handler (until :meth:`uninstall`)."""
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self._previous)

    def accept_failed(self, exc: BaseException | None) -> None:
        """Accepting failed for want of descriptors (or memory): counted, and one line."""
        self.stats.accept_errors += 1
        self.log.error("cannot accept connections (%s) with %d open; accepting again in 1s",
                       getattr(exc, "strerror", None) or exc, len(self.connections))

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # Out of descriptors, asyncio stops accepting for a second and says so with a
        # traceback each time: one line here instead, rate-limited like every warning.
        if str(context.get("message", "")).startswith("socket.accept() out of system"):
            self.accept_failed(context.get("exception"))
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


async def shared_key_handshake(
    writer: asyncio.StreamWriter, splitter: FrameSplitter, server: Any,
    read: Callable[[float], Awaitable[bytes]], log: logging.Logger, peer: Any = None,
) -> list[bytes] | None:
    """Run HELO/PING/PONG for ``server`` (its ``shared_key``, ``hostname``, ``max_frame``,
    ``stats``); ``read(started)`` reads with the frame timeout running since ``started``;
    ``log`` is the server's (its repeated warnings rate-limited). Return the frames read past
    the PING, or None if refused."""
    nonce = os.urandom(16)
    writer.write(encode_helo(nonce))
    await writer.drain()
    frames: list[bytes] = []
    splitter.max_frame = min(_HANDSHAKE_FRAME, server.max_frame)
    started = asyncio.get_running_loop().time()  # the PING must come within frame_timeout
    while not frames:
        data = await read(started)
        if not data:
            return None
        frames = splitter.feed(data)
    splitter.max_frame = server.max_frame
    try:
        ping = parse_ping(decode_message(frames[0]))
    except (FrameError, HandshakeError) as exc:
        server.stats.handshake_failures += 1
        log.warning("forward handshake from %s failed: %s", peer, exc)
        return None
    ok = ping.verify(nonce, server.shared_key)
    reason = "" if ok else "shared_key mismatch"
    writer.write(encode_pong(ok, reason, server.hostname, ping.salt, nonce, server.shared_key))
    await writer.drain()
    if not ok:
        server.stats.handshake_failures += 1
        log.warning("forward handshake refused for %s: %s", peer, reason)
        return None
    return frames[1:]  # a client that did not wait for PONG
