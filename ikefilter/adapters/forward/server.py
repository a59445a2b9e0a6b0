"""Fluent Forward server: decode frames, call the processor once per batch, pass records on.

Records go either to JSON lines (a file, stdout or a writer callable) or to the next forward
hop (:class:`~.upstream.UpstreamClient`), re-emitted as msgpack with their original event
time. A ``chunk`` is acked only once its records are written and flushed, or
acked by the next hop: delivery is at least once.

The command line runs it through :mod:`.service`. Parameters of :class:`ForwardServer`:

- ``processor``: a :class:`~.contract.Processor`, called once per batch (a frame's records, a
  slice at a time, or the Message-mode frames of one socket read; each batch is passed on
  before the next is processed).
- ``listen``: ``(host, port)`` to bind; loopback unless told otherwise; port 0 picks one.
- ``output``: where JSON lines go: a file path (appended to), ``"-"`` for stdout, or a callable
  taking the encoded lines (``bytes``; it may return an awaitable) that must have written them
  durably when it returns. Exactly one of ``output`` and ``upstream``.
- ``upstream``: ``(host, port)`` of the next forward hop, or a ready ``UpstreamClient``.
- ``shared_key``, ``upstream_shared_key``: the key clients must prove (``None``: no
  handshake), and the one the next hop asks for.
- ``tag_rewrite``: the tag sent upstream: a ``str`` replacing every tag, or a callable
  ``old_tag -> new_tag`` (default: as received).
- ``max_frame``: largest frame accepted, in bytes; a larger one closes that connection.
- ``upstream_max_frame``: largest payload of a frame sent to the next hop, in bytes (under
  Fluent Bit's ``Buffer_Max_Size``); a chunk's documents go in as many frames as that takes,
  and the chunk is acked once every one of them is.
- ``max_decompressed``: largest gzip-decompressed entries of one frame, in bytes.
- ``max_objects``, ``max_events``: a frame's work budget, counted before it is decoded
  (:mod:`.limits`); ``max_connections``: connections served at once (:class:`ConnectionCap`).
- ``write_timeout``, ``idle_timeout``: seconds a client may leave its acks unread, or stay
  silent, before it is closed.
- ``frame_timeout``: seconds a frame (or the handshake, or the TLS handshake) may take to
  arrive once it has begun; a client trickling bytes is closed when it runs out.
- ``tls_cert``, ``tls_key``: PEM certificate chain and private key (``tls_key`` omitted when
  the certificate file holds it): clients must speak TLS 1.2 or later; one that does not is
  logged and counted (:mod:`.tls_port`).
- ``upstream_tls``: TLS to the next hop, its certificate checked against the system CAs or
  ``upstream_ca`` (a PEM file); an :class:`ssl.SSLContext` is used as it is.
- ``drain_timeout``: seconds allowed on shutdown for in-flight frames to finish;
  ``reuse_port``: share the port with other workers (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ..batching import collector_paused
from ..msgpack_framing import OverBudget
from .admission import ConnectionCap, default_max_connections, shared_key_handshake
from .contract import ForwardStats, Processor
from .entries import EventTimes
from .frames import batches
from .limits import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_OBJECTS,
    HEAVY_FRAME,
    SLICE,
    RateLimit,
)
from .output import FileOutput, NotWritten, write_lines
from .protocol import (
    DEFAULT_MAX_DECOMPRESSED,
    DEFAULT_MAX_FRAME,
    DEFAULT_UPSTREAM_MAX_FRAME,
    Frame,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_ack,
    pack_payloads,
)
from .tls import server_tls_context
from .tls_port import TlsPort
from .upstream import UpstreamClient

__all__ = ["ForwardServer"]

log = logging.getLogger(__name__)
log.addFilter(RateLimit())

_READ_SIZE = 65536  # larger reads were slower (cache)


Writer = Callable[[bytes], Any]
Output = str | os.PathLike | Writer
TagRewrite = str | Callable[[str], str] | None


class ForwardServer:
    """Fluent Forward v1 server in front of a :class:`Processor`.

    See the module docstring for the parameters. Use :meth:`start` then :meth:`stop`, or
    ``async with``; :attr:`address` is the bound ``(host, port)``.
    """

    def __init__(
        self,
        processor: Processor,
        listen: tuple[str, int] = ("127.0.0.1", 24224),
        output: Output | None = None,
        upstream: tuple[str, int] | UpstreamClient | None = None,
        *,
        shared_key: str | bytes | None = None,
        upstream_shared_key: str | bytes | None = None,
        hostname: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        upstream_max_frame: int = DEFAULT_UPSTREAM_MAX_FRAME,
        max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_connections: int | None = None,
        write_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        tag_rewrite: TagRewrite = None,
        tls_cert: str | os.PathLike | None = None,
        tls_key: str | os.PathLike | None = None,
        upstream_tls: bool | ssl.SSLContext = False,
        upstream_ca: str | os.PathLike | None = None,
        reuse_port: bool = False,
    ) -> None:
        if (output is None) == (upstream is None):
            raise ValueError("give exactly one of output and upstream")
        if tls_key is not None and tls_cert is None:
            raise ValueError("tls_key without tls_cert")
        # built here, so that a bad certificate fails before anything listens
        self._tls = server_tls_context(tls_cert, tls_key) if tls_cert is not None else None
        self.processor = processor
        self.listen = listen
        # several worker processes share one port; the kernel spreads connections over them
        self.reuse_port = reuse_port
        self.shared_key = shared_key
        self.hostname = hostname or socket.gethostname()
        self.max_frame = max_frame
        self.upstream_max_frame = upstream_max_frame
        self.max_decompressed = max_decompressed
        self.max_objects = max_objects
        self.max_events = max_events
        self.write_timeout = write_timeout
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.drain_timeout = drain_timeout
        self.stats = ForwardStats()
        self._output_target = output
        self._write: Writer | None = None
        self._file_output: FileOutput | None = None
        if isinstance(upstream, UpstreamClient) or upstream is None:
            self._upstream = upstream
        else:
            self._upstream = UpstreamClient(
                upstream[0],
                upstream[1],
                shared_key=upstream_shared_key,
                tls=upstream_tls,
                tls_ca=upstream_ca,
            )
        if tag_rewrite is None or callable(tag_rewrite):
            self._rewrite_tag = tag_rewrite
        else:
            self._rewrite_tag = lambda _tag, new=str(tag_rewrite): new
        self._server: asyncio.AbstractServer | TlsPort | None = None
        self._connections: set[asyncio.Task] = set()
        self._reading: set[asyncio.Task] = set()  # connections waiting for bytes, not busy
        self._cap = ConnectionCap(max_connections or default_max_connections(),
                                  self._connections, self.stats, log)
        self._heavy = asyncio.Lock()  # one large or compressed frame decoded at a time
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.sockets[0].getsockname()[:2]

    async def __aenter__(self) -> ForwardServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> tuple[str, int]:
        """Open the output, start the upstream client and listen; return the bound address."""
        target = self._output_target
        if target is not None:
            if callable(target):
                self._write = target
            else:
                self._file_output = self._write = FileOutput(target)
        if self._upstream is not None:
            await self._upstream.start()
        host, port = self.listen
        self._cap.install(asyncio.get_running_loop())
        if self._tls is None:
            self._server = await asyncio.start_server(
                self._serve_connection, host, port, limit=_READ_SIZE,
                reuse_port=self.reuse_port or None)
        else:  # a client that is refused TLS is logged and counted there
            self._server = await TlsPort(
                self._tls, self._serve_connection, handshake_timeout=self.frame_timeout or 60.0,
                read_limit=_READ_SIZE, stats=self.stats, cap=self._cap, log=log,
            ).start(host, port, self.reuse_port)
        log.info("forward server listening on %s:%s%s", *self.address,
                 " (TLS)" if self._tls else "")
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let in-flight frames finish (up to ``drain_timeout``), close."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        # one drain_timeout for everything: the connections' frames, then the next hop's acks
        deadline = asyncio.get_running_loop().time() + self.drain_timeout
        if self._server is not None:
            self._server.close()
        for task in list(self._reading):  # idle connections have nothing in flight
            task.cancel()
        if self._connections:
            _, late = await asyncio.wait(set(self._connections), timeout=self.drain_timeout)
            for task in late:
                log.warning("connection still busy after %ss: closing it", self.drain_timeout)
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
        if self._upstream is not None:
            left = deadline - asyncio.get_running_loop().time()
            unacked = await self._upstream.close(timeout=max(left, 0.0))
            self.stats.upstream_refused = self._upstream.refused
            if unacked:
                # A client that waits for acks sends these again (its chunks were not acked
                # either); one that does not has lost them: said, never silent.
                self.stats.undelivered += unacked
                log.warning("%d events passed to the next hop were not acknowledged by it "
                            "before shutdown: not delivered", unacked)
        if self._file_output is not None:
            self._file_output.close()
            self.stats.torn_tails = self._file_output.torn
        self._cap.uninstall(asyncio.get_running_loop())
        self._stopped.set()

    # ----------------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        if not self._cap.admit(peer):
            writer.close()
            return
        self._connections.add(task)
        self.stats.connections += 1
        splitter = FrameSplitter(self.max_frame, max_objects=self.max_objects)
        loop = asyncio.get_running_loop()
        try:
            pending: list[bytes] = []
            if self.shared_key is not None:
                pending = await shared_key_handshake(
                    writer, splitter, self, lambda started: self._read(reader, started), log,
                    peer)
                if pending is None:
                    return
            started = None  # when the incomplete frame in the splitter began to wait for its rest
            while True:
                if pending:
                    await self._handle_frames(pending, writer, peer)
                if self._stopping:
                    return
                # the clock of a frame runs while we wait for its bytes, never while we are
                # busy (or held back by the next hop): a slow client cannot hold a connection
                if not splitter.buffered:
                    started = None
                elif started is None:
                    started = loop.time()
                data = await self._read(reader, started)
                if not data:
                    return
                pending = splitter.feed(data)
                if pending:
                    started = None
        except FrameError as exc:
            self.stats.protocol_errors += 1
            if isinstance(exc, OverBudget):
                self.stats.over_budget += 1
            log.warning("closing forward connection from %s: %s", peer, exc)
        except NotWritten as exc:
            log.error("closing forward connection from %s: %s", peer, exc)
        except asyncio.TimeoutError as exc:
            self.stats.timeouts += 1
            log.info("closing forward connection from %s: %s", peer, exc or "idle")
        except (ConnectionError, OSError) as exc:
            log.info("forward connection from %s lost: %s", peer, exc)
        except asyncio.CancelledError:
            pass  # shutdown or evicted idle: unacked frames will be resent by the client
        except Exception:
            self.stats.processor_errors += 1
            log.exception("closing forward connection from %s: processing failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, started: float | None = None) -> bytes:
        """Read with the idle timeout, and the frame timeout counted from ``started`` (the
        loop time a frame began); meanwhile the connection has nothing in flight."""
        task = asyncio.current_task()
        self._reading.add(task)
        if started is None:
            self._cap.idle[task] = asyncio.get_running_loop().time()
        try:
            timeout = self.idle_timeout
            slow = False
            if started is not None and self.frame_timeout is not None:
                left = started + self.frame_timeout - asyncio.get_running_loop().time()
                if timeout is None or left < timeout:
                    timeout, slow = left, True
            if timeout is None:
                return await reader.read(_READ_SIZE)
            try:
                if timeout <= 0:
                    raise asyncio.TimeoutError
                return await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
            except asyncio.TimeoutError:
                if slow:
                    raise asyncio.TimeoutError(
                        f"frame not complete within {self.frame_timeout}s"
                    ) from None
                raise asyncio.TimeoutError(f"idle for {self.idle_timeout}s") from None
        finally:
            self._reading.discard(task)
            self._cap.idle.pop(task, None)

    async def _handle_frames(self, raw_frames: list[bytes], writer: asyncio.StreamWriter,
                             peer: Any = None) -> None:
        # heavy: large, or gzip (named in the option map at the frame's end)
        if any(len(raw) > HEAVY_FRAME or b"\xa4gzip" in raw[-128:] for raw in raw_frames):
            # walked and decoded off the loop, so that other connections go on meanwhile;
            # (the collector is the process's: a thread does not pause it under the loop)
            async with self._heavy:
                decoded = await asyncio.to_thread(self._decode, raw_frames)
                await self._handle_decoded(self._count(decoded, peer), writer)
        else:
            with collector_paused():  # the decoded objects hold no cycles
                decoded = self._decode(raw_frames)
            await self._handle_decoded(self._count(decoded, peer), writer)

    def _decode(self, raw_frames: list[bytes]) -> list[Frame | None]:
        return [decode_frame(raw, self.max_decompressed, max_objects=self.max_objects,
                             max_events=self.max_events) for raw in raw_frames]

    def _count(self, decoded: list[Frame | None], peer: Any) -> list[Frame]:
        frames: list[Frame] = []
        for frame in decoded:
            if frame is None:
                self.stats.heartbeats += 1
            else:
                frames.append(frame)
                if frame.invalid:
                    self.stats.invalid += frame.invalid
                    log.warning("skipped %d entries of tag %r from %s that are not [time, map]",
                                frame.invalid, frame.tag, peer)
        return frames

    async def _handle_decoded(self, frames: list[Frame], writer: asyncio.StreamWriter) -> None:
        if not frames:
            return
        self.stats.frames += len(frames)
        waits: list[asyncio.Future] = []
        for n, (records, times, runs) in enumerate(batches(frames, SLICE)):
            if n:
                await asyncio.sleep(0)  # acks, writes and other connections between batches
            if self._upstream is not None:
                # while the next hop is down or slow, stop reading: TCP pushes back on the sender
                await self._upstream.wait_capacity()
            with collector_paused():  # the batch's objects all live until it is sent
                outputs = self.processor.process_records(records, EventTimes(times))
                if len(outputs) != len(records):
                    raise RuntimeError(
                        f"processor returned {len(outputs)} results for {len(records)} records"
                    )
                self.stats.events += len(records)
                if self._upstream is not None:
                    waits += self._send_upstream(runs, times, outputs)
            if self._upstream is None:
                # a blocking write is the backpressure: nothing else is read while the output lags
                await self._write_lines(outputs)
        if waits and any(frame.chunk is not None for frame in frames):
            gathered = asyncio.gather(*waits)
            try:
                await asyncio.shield(gathered)
            except asyncio.CancelledError:
                # shutdown: the upstream fails what it could not deliver; nobody awaits it now
                gathered.add_done_callback(_consume)
                raise
        acks = [encode_ack(frame.chunk) for frame in frames if frame.chunk is not None]
        if acks:
            writer.write(b"".join(acks))
            self.stats.acks += len(acks)
            if self.write_timeout is None:
                await writer.drain()
            else:
                try:
                    await asyncio.wait_for(writer.drain(), self.write_timeout)
                except asyncio.TimeoutError:
                    raise asyncio.TimeoutError(
                        f"acks not read within {self.write_timeout}s") from None

    async def _write_lines(self, outputs: list[Any]) -> None:
        # (a processor that keeps counts of its own is told of what JSON could not carry)
        await write_lines(self._write, outputs, self.stats,
                          getattr(self.processor, "count_unencodable", None))

    def _send_upstream(self, runs: list[tuple[str, int]], times: list[Any],
                       outputs: list[Any]) -> list[asyncio.Future]:
        """Submit a batch's documents, each run of one tag in frames under the limit."""
        waits = []
        start = 0
        for tag, stop in runs:
            payloads = pack_payloads(times[start:stop], outputs[start:stop],
                                     self.upstream_max_frame)
            count = sum(size for _, size in payloads)
            self.stats.dropped += stop - start - count
            self.stats.emitted += count
            start = stop
            if count and self._rewrite_tag is not None:
                tag = self._rewrite_tag(tag)
            for payload, size in payloads:
                waits.append(self._upstream.submit(tag, payload, size))
        return waits


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
