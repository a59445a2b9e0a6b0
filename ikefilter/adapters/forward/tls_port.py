"""The TLS port: a listener that looks at a client's first byte before the TLS handshake.

``asyncio.start_server(ssl=...)`` drops a client whose handshake fails without a word (a
plain TCP client, TLS 1.0, no shared cipher, a handshake that never completes). Here the
listening sockets accept raw connections; a client whose first byte is not a TLS handshake
record (0x16) is logged with its address, counted (``plaintext``) and closed; the others
are upgraded (``loop.connect_accepted_socket``), and a handshake that fails is logged with
the address and OpenSSL's reason and counted (``tls_failures``). A client that connects and
closes without a byte (a TCP health check) is neither.

Accepting runs out of descriptors as asyncio's own listener does: one rate-limited line,
counted (``accept_errors``), accepting again after a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["TlsPort"]

_HANDSHAKE_RECORD = 0x16  # a TLS connection opens with a handshake record: the ClientHello
_BACKLOG = 100  # asyncio's default
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_RETRY = 1.0  # seconds, as asyncio waits

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def peer_text(peer: Any) -> str:
    """``host:port`` (``[v6]:port``) of a peer address tuple."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


class TlsPort:
    """Listens like an :class:`asyncio.Server` (``sockets``, :meth:`close`,
    :meth:`wait_closed`) and hands each client that completed the TLS handshake to
    ``serve(reader, writer)``, as ``asyncio.start_server`` would.

    :param context: the server's TLS context.
    :param handshake_timeout: seconds from accepting a client to its completed handshake.
    :param stats: the server's counters (``plaintext``, ``tls_failures``, ``accept_errors``).
    :param cap: the server's :class:`~.admission.ConnectionCap`, told of accept failures.
    """

    def __init__(self, context: ssl.SSLContext, serve: Serve, *, handshake_timeout: float,
                 read_limit: int, stats: Any, cap: Any, log: logging.Logger) -> None:
        self.context = context
        self.serve = serve
        self.handshake_timeout = handshake_timeout
        self.read_limit = read_limit
        self.stats = stats
        self.cap = cap
        self.log = log
        self.sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task] = set()  # accepting, and clients before the handshake

    async def start(self, host: str | None, port: int, reuse_port: bool = False) -> TlsPort:
        """Bind every address ``host`` resolves to, and start accepting."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        try:
            for family, _, _, _, address in dict.fromkeys(infos):
                sock = socket.create_server(address, family=family, backlog=_BACKLOG,
                                            reuse_port=reuse_port)
                sock.setblocking(False)
                self.sockets.append(sock)
        except BaseException:
            self._close_sockets()
            raise
        for sock in self.sockets:
            self._spawn(self._accept(sock))
        return self

    def close(self) -> None:
        """Stop accepting, and drop the clients whose handshake is not through (they have
        nothing in flight); the served connections are the caller's."""
        for task in list(self._tasks):
            task.cancel()
        self._close_sockets()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listening)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self.cap.accept_failed(exc)
                else:
                    self.log.error("cannot accept connections: %s", exc.strerror or exc)
                await asyncio.sleep(_ACCEPT_RETRY)
                continue
            self._spawn(self._admit(sock, peer))

    async def _admit(self, sock: socket.socket, peer: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handshake_timeout
        handed = False
        try:
            first = await _peek(loop, sock, deadline)
            if not first:
                return  # connected and closed without a word: a TCP check
            if first[0] != _HANDSHAKE_RECORD:
                self.stats.plaintext += 1
                self.log.warning("plaintext connection on the TLS port from %s: closed",
                                 peer_text(peer))
                return
            reader = asyncio.StreamReader(limit=self.read_limit)
            protocol = asyncio.StreamReaderProtocol(reader, self.serve)
            tls: dict[str, Any] = {}
            if sys.version_info >= (3, 11):  # a peer that never answers close_notify
                tls["ssl_shutdown_timeout"] = 5.0
            left = max(deadline - loop.time(), 0.001)
            handed = True  # the transport owns the socket from here, closed or not
            await asyncio.wait_for(loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout, **tls), left)
        except asyncio.TimeoutError:
            self._failed(peer, f"no TLS handshake within {self.handshake_timeout:g}s")
        except ssl.SSLError as exc:
            self._failed(peer, _reason(exc))
        except (ConnectionError, OSError) as exc:
            if handed:
                self._failed(peer, exc.strerror or str(exc) or type(exc).__name__)
            else:
                self.log.info("forward connection from %s lost: %s", peer_text(peer), exc)
        except Exception:
            self.log.exception("forward connection from %s: TLS set-up failed", peer_text(peer))
        finally:
            if not handed:
                sock.close()

    def _failed(self, peer: Any, reason: str) -> None:
        self.stats.tls_failures += 1
        self.log.warning("TLS handshake from %s failed: %s", peer_text(peer), reason)


async def _peek(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
                ) -> bytes:
    """The first byte the client sent, left unread (b"" when it closed first); raises
    :class:`asyncio.TimeoutError` when none came by ``deadline`` (loop time)."""
    while True:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            return sock.recv(1, socket.MSG_PEEK)
        readable = loop.create_future()
        loop.add_reader(sock.fileno(), _wake, readable)
        try:
            await asyncio.wait_for(readable, deadline - loop.time())
        finally:
            loop.remove_reader(sock.fileno())


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words: ``UNSUPPORTED_PROTOCOL`` -> ``unsupported protocol``."""
    if exc.reason == "UNSUPPORTED_PROTOCOL":
        return "unsupported protocol (TLS 1.2 or later is required)"
    if exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc) or type(exc).__name__
