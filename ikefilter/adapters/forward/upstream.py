"""At-least-once Fluent Forward client to the next hop.

:class:`UpstreamClient` sends PackedForward frames ``[tag, bin(entries), {"chunk", "size"}]``
over one TCP connection and resolves each submission once the next hop acks its chunk
(``{"ack": chunk}``). When the hop is down, the connection breaks or it owes an ack and has
sent none for ``ack_timeout``, it reconnects with exponential backoff and resends every
unacked chunk, in order, under the same chunk id; nothing is dropped while the client runs.
A resent chunk may arrive twice at the hop (the first copy was received but its ack was
lost).

The ack clock of a chunk starts once its bytes are written out (not when it is queued behind
others), and restarts with every ack the hop sends: a hop working through a queue of chunks
is slow, not gone. Acks that came in while this process was busy are read before a timeout
is declared, so a busy filter does not send again what the hop already has.

With ``tls`` the connection is TLS 1.2 or later, and the hop's certificate and host name are
checked (against ``tls_ca`` when given, else the system's CAs).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import secrets
import socket
import ssl
import sys
import time

from .protocol import (
    FrameError,
    FrameSplitter,
    HandshakeError,
    decode_ack,
    decode_message,
    encode_packed_forward,
    encode_ping,
    parse_helo,
    parse_pong,
)
from .tls import client_tls_context

__all__ = ["UpstreamClient"]

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_MAX_CONTROL_FRAME = 64 * 1024


# Connections in a row that end without an ack after the oldest chunk went out: the hop
# refuses that frame (a receive buffer smaller than the frame, say), said once.
REFUSALS = 3


class _Chunk:
    __slots__ = ("frame", "future", "sent_at", "size", "refusals")

    def __init__(self, frame: bytes, future: asyncio.Future, size: int) -> None:
        self.frame = frame
        self.future = future
        self.sent_at = 0.0
        self.size = size
        self.refusals = 0  # connections that ended with no ack after it was written out


class UpstreamClient:
    """Forward client that keeps every submitted chunk until the next hop acks it.

    :param host: next hop's address.
    :param port: next hop's port.
    :param shared_key: answer the hop's HELO with this key (``None``: the hop must not ask).
    :param hostname: name sent in PING; defaults to this machine's host name.
    :param ack_timeout: seconds the hop may owe an ack without sending any (counted from
        when the frame was written out) before reconnecting and resending.
    :param connect_timeout: seconds allowed for one connection attempt and the handshake.
    :param backoff_initial: first delay between attempts, in seconds; doubles on each failure.
    :param backoff_max: longest delay between attempts, in seconds.
    :param max_pending: unacked chunks allowed before :meth:`wait_capacity` waits.
    :param max_pending_bytes: unacked frame bytes allowed before :meth:`wait_capacity` waits.
    :param tls: speak TLS to the hop: ``True`` (verified, see ``tls_ca``) or a ready
        :class:`ssl.SSLContext`.
    :param tls_ca: PEM file of the CA certificates to trust (implies ``tls``).
    :param tls_server_name: host name the certificate must carry (default: ``host``).

    Use it inside a running event loop: :meth:`start`, then :meth:`submit` or :meth:`send`,
    then :meth:`close`; or ``async with``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        shared_key: str | bytes | None = None,
        hostname: str | None = None,
        ack_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        max_pending: int = 64,
        max_pending_bytes: int = 64 * 1024 * 1024,
        tls: bool | ssl.SSLContext = False,
        tls_ca: str | os.PathLike | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.shared_key = shared_key
        self.hostname = hostname or socket.gethostname()
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.tls_server_name = tls_server_name or host
        self._tls = client_tls_context(tls_ca) if (tls is True or tls_ca) else (tls or None)
        self.resent = 0  # chunks sent again after a failure
        self.acked = 0
        self.refused = 0  # chunks the hop refused REFUSALS times in a row (each said once)
        self._pending: dict[str, _Chunk] = {}  # insertion order is submission order
        self._pending_bytes = 0
        self._last_ack = 0.0  # when the hop last acked anything (monotonic)
        self._unsent: collections.deque[str] = collections.deque()
        self._kick = asyncio.Event()  # something new to send
        self._space = asyncio.Event()  # an ack freed room below max_pending
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Chunks submitted and not yet acked."""
        return len(self._pending)

    async def start(self) -> None:
        """Start the connection task (it connects lazily, when there is something to send)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"upstream {self.host}:{self.port}")

    async def __aenter__(self) -> UpstreamClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def submit(self, tag: str, payload: bytes, size: int) -> asyncio.Future:
        """Queue one PackedForward chunk; the future resolves (to None) once it is acked.

        :param tag: the tag to send.
        :param payload: concatenated msgpack ``[time, record]`` entries.
        :param size: number of entries in ``payload``.
        """
        if self._closed:
            raise RuntimeError("upstream client is closed")
        chunk_id = secrets.token_hex(16)
        future = asyncio.get_running_loop().create_future()
        frame = encode_packed_forward(tag, payload, chunk_id, size)
        self._pending[chunk_id] = _Chunk(frame, future, size)
        self._pending_bytes += len(frame)
        self._unsent.append(chunk_id)
        self._kick.set()
        return future

    async def send(self, tag: str, payload: bytes, size: int) -> None:
        """Submit one chunk and wait for its ack (retrying as long as it takes)."""
        await asyncio.shield(self.submit(tag, payload, size))

    async def wait_capacity(self) -> None:
        """Wait until fewer than ``max_pending`` chunks, and fewer than ``max_pending_bytes``
        bytes, are unacked."""
        while ((len(self._pending) >= self.max_pending
                or self._pending_bytes >= self.max_pending_bytes) and not self._closed):
            self._space.clear()
            await self._space.wait()

    async def close(self, timeout: float | None = 5.0) -> int:
        """Wait up to ``timeout`` seconds for pending acks, then stop.

        Chunks still unacked then fail their futures with :class:`ConnectionError`.

        :return: the entries of those chunks: never acknowledged by the next hop.
        """
        if self._closed:
            return 0
        if timeout and self._pending:
            waiting = [c.future for c in self._pending.values()]
            await asyncio.wait(waiting, timeout=timeout)
        self._closed = True
        self._space.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        unacked = 0
        for chunk in self._pending.values():
            if not chunk.future.done():
                unacked += chunk.size
                chunk.future.set_exception(ConnectionError("upstream closed before the ack"))
                chunk.future.exception()  # mark retrieved: nobody may be waiting any more
        self._pending.clear()
        self._pending_bytes = 0
        return unacked

    # ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            while not self._pending:
                self._kick.clear()
                await self._kick.wait()
            acked_before = self.acked
            next(iter(self._pending.values())).sent_at = 0.0  # not out on this connection yet
            try:
                tls = {}
                if self._tls is not None:
                    tls = {"ssl": self._tls, "server_hostname": self.tls_server_name}
                    if sys.version_info >= (3, 11):  # a hop that never answers close_notify
                        tls["ssl_shutdown_timeout"] = 5.0
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, **tls), self.connect_timeout
                )
            except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
                log.warning("next hop %s:%s unreachable: %s", self.host, self.port, exc)
            else:
                try:
                    await self._session(reader, writer)
                except (OSError, EOFError, asyncio.TimeoutError, FrameError, HandshakeError) as exc:
                    log.warning(
                        "next hop %s:%s: %s", self.host, self.port, exc or type(exc).__name__
                    )
                except Exception:  # keep retrying: the chunks must not be stranded
                    log.exception("next hop %s:%s: unexpected error", self.host, self.port)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            if self.acked > acked_before:
                delay = self.backoff_initial
            elif self._pending:
                self._count_refusal(next(iter(self._pending.values())))
            if self._pending:
                # jitter keeps many filters from reconnecting in step
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.backoff_max)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = FrameSplitter(_MAX_CONTROL_FRAME, replies=True)
        leftover: list[bytes] = []
        if self.shared_key is not None:
            leftover = await asyncio.wait_for(
                self._handshake(reader, writer, splitter), self.connect_timeout
            )
        for raw in leftover:
            self._on_ack(raw)
        # a new connection starts from scratch: every unacked chunk goes (again), in order
        self.resent += len(self._pending) - len(self._unsent)
        self._unsent = collections.deque(self._pending)
        acks = asyncio.create_task(self._read_acks(reader, splitter))
        try:
            while True:
                self._kick.clear()
                while self._unsent:
                    chunk = self._pending.get(self._unsent.popleft())
                    if chunk is not None:
                        chunk.sent_at = 0.0
                        writer.write(chunk.frame)
                        # a hop that stops reading for ack_timeout is gone, as one that
                        # stops acking
                        await asyncio.wait_for(writer.drain(), self.ack_timeout)
                        chunk.sent_at = time.monotonic()  # out of our hands: its clock starts
                    if acks.done():
                        acks.result()
                timeout = None
                if self._pending:
                    timeout = self._ack_deadline() - time.monotonic()
                    if timeout <= 0:
                        # acks that arrived while we were busy are read before the verdict
                        await asyncio.wait((acks,), timeout=min(1.0, self.ack_timeout / 10))
                        if acks.done():
                            acks.result()
                        if self._pending and self._ack_deadline() <= time.monotonic():
                            raise asyncio.TimeoutError("no ack from the next hop")
                        continue
                kick = asyncio.ensure_future(self._kick.wait())
                try:
                    await asyncio.wait(
                        (acks, kick), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    kick.cancel()
                if acks.done():
                    acks.result()
        finally:
            acks.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await acks

    def _count_refusal(self, oldest: _Chunk) -> None:
        """A connection ended with no ack after ``oldest`` went out: once it has happened
        ``REFUSALS`` times in a row, the hop refuses that frame. It is kept and sent again (it
        is not acked to its sender either, so nothing is lost), counted and said once."""
        if not oldest.sent_at:
            return  # never written out on this connection: no verdict on it
        oldest.refusals += 1
        if oldest.refusals == REFUSALS:
            self.refused += 1
            log.error(
                "next hop %s:%s refuses a frame of %d bytes (%d connections in a row ended with"
                " no ack after it): it is kept and sent again until acked or shutdown; a"
                " receive buffer below --upstream-max-frame (Fluent Bit's Buffer_Max_Size)"
                " does this", self.host, self.port, len(oldest.frame), REFUSALS)

    def _ack_deadline(self) -> float:
        """When the hop is late: ``ack_timeout`` after the oldest unacked chunk was written
        out, or after the hop's last ack if that came later."""
        oldest = next(iter(self._pending.values()))
        return max(oldest.sent_at, self._last_ack) + self.ack_timeout

    async def _read_acks(self, reader: asyncio.StreamReader, splitter: FrameSplitter) -> None:
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise EOFError("next hop closed the connection")
            for raw in splitter.feed(data):
                self._on_ack(raw)

    def _on_ack(self, raw: bytes) -> None:
        try:
            chunk_id = decode_ack(raw)
        except FrameError:
            if raw.startswith(b"\x92\xa4HELO"):
                raise HandshakeError("the next hop asks for a shared key") from None
            raise
        chunk = self._pending.pop(chunk_id, None)  # a late ack of a resent chunk is fine
        if chunk is None:
            return
        self._last_ack = time.monotonic()
        self._pending_bytes -= len(chunk.frame)
        self.acked += 1
        if not chunk.future.done():
            chunk.future.set_result(None)
        self._space.set()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, splitter: FrameSplitter
    ) -> list[bytes]:
        frames = await _read_frames(reader, splitter)
        nonce, auth, _ = parse_helo(decode_message(frames.pop(0)))
        salt = os.urandom(16).hex()
        writer.write(encode_ping(self.hostname, salt, nonce, self.shared_key, auth=auth))
        await writer.drain()
        if not frames:
            frames = await _read_frames(reader, splitter)
        ok, reason = parse_pong(decode_message(frames.pop(0)), salt, nonce, self.shared_key)
        if not ok:
            raise HandshakeError(f"next hop refused the handshake: {reason}")
        return frames


async def _read_frames(reader: asyncio.StreamReader, splitter: FrameSplitter) -> list[bytes]:
    """Read until at least one frame is complete."""
    while True:
        data = await reader.read(_READ_SIZE)
        if not data:
            raise EOFError("next hop closed the connection")
        frames = splitter.feed(data)
        if frames:
            return frames
