"""The forward hop keeps up: big frames go through in batches, and the next hop's ack clock
counts only the hop's own silence.

The next hop here is a real forward server on a loopback socket (acking as told), and the
processor the real pipeline: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import msgspec

from ikefilter import catalog, generate
from ikefilter.adapters.forward.frames import Frame, batches
from ikefilter.adapters.forward.limits import SLICE
from ikefilter.adapters.forward.protocol import (
    FrameSplitter,
    decode_frame,
    encode_ack,
    event_time,
    pack_entries,
)
from ikefilter.adapters.forward.server import ForwardServer
from ikefilter.adapters.forward.upstream import REFUSALS, UpstreamClient
from ikefilter.pipeline import Pipeline

LOOPBACK = "127.0.0.1"


def _frame(tag: str, first: int, count: int) -> Frame:
    return Frame(tag, list(range(first, first + count)),
                 [{"n": n} for n in range(first, first + count)])


def test_batches_cut_big_frames_and_join_small_ones_keeping_tags_and_order() -> None:
    frames = [_frame("a", 0, 5), _frame("a", 5, 1), _frame("b", 6, 2), _frame("a", 8, 4)]
    got = list(batches(frames, 4))
    assert [[r["n"] for r in records] for records, _, _ in got] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert [times for _, times, _ in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # runs: (tag, end index in the batch); consecutive records of one tag are one run
    assert [runs for _, _, runs in got] == [[("a", 4)], [("a", 2), ("b", 4)], [("a", 4)]]
    assert list(batches([], 4)) == []
    assert [len(r) for r, _, _ in batches([_frame("a", 0, 4)], 4)] == [4]


class NextHop:
    """A forward server that records every entry it receives and acks each frame after
    ``delay`` seconds, one frame at a time, as a busy but working hop does."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.frames = 0
        self.entries: Counter = Counter()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        return self.server.sockets[0].getsockname()[1]

    def refuses(self, raw: bytes) -> bool:
        """Whether the hop closes the connection on this frame instead of taking it."""
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = FrameSplitter()
        try:
            while data := await reader.read(65536):
                for raw in splitter.feed(data):
                    if self.refuses(raw):
                        return
                    frame = decode_frame(raw)
                    self.frames += 1
                    self.entries.update(r["event"]["original"] if "event" in r else r["n"]
                                        for r in frame.records)
                    await asyncio.sleep(self.delay)
                    writer.write(encode_ack(frame.chunk))
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_hop_that_acks_slowly_but_steadily_is_not_sent_anything_twice() -> None:
    """Eight frames queued at once, acked 0.2 s apart by the hop with a 0.5 s ack timeout:
    the last ack comes 1.6 s after the frames were queued, but the hop was never silent
    for 0.5 s, so nothing times out and nothing is sent again."""

    async def main() -> tuple[UpstreamClient, NextHop]:
        hop = NextHop(delay=0.2)
        port = await hop.start()
        client = UpstreamClient(LOOPBACK, port, ack_timeout=0.5, backoff_initial=0.05)
        await client.start()
        futures = []
        for chunk in range(8):
            payload, size = pack_entries([0] * 10, [{"n": chunk * 10 + i} for i in range(10)])
            futures.append(client.submit("t", payload, size))
        await asyncio.wait_for(asyncio.gather(*futures), 20)
        await client.close()
        await hop.stop()
        return client, hop

    client, hop = asyncio.run(main())
    assert client.resent == 0
    assert hop.frames == 8
    assert hop.entries == Counter(range(80))


def test_a_hop_that_goes_silent_is_still_given_up_on_and_sent_the_chunk_again() -> None:
    """The other side of the same clock: a hop that acks nothing for ack_timeout gets the
    chunk again on a new connection."""

    async def main() -> tuple[UpstreamClient, NextHop]:
        hop = NextHop(delay=0.8)  # each ack comes after the 0.3 s timeout
        port = await hop.start()
        client = UpstreamClient(LOOPBACK, port, ack_timeout=0.3, backoff_initial=0.05)
        await client.start()
        payload, size = pack_entries([0], [{"n": 1}])
        future = client.submit("t", payload, size)
        await asyncio.sleep(1.0)
        hop.delay = 0.0
        await asyncio.wait_for(future, 20)
        await client.close()
        await hop.stop()
        return client, hop

    client, hop = asyncio.run(main())
    assert client.resent >= 1
    assert hop.entries[1] >= 2


def _lines(count: int) -> list[str]:
    return list(generate.lines(catalog.load(), count, 7, ("bracketed",)))


class Recording(Pipeline):
    """The real pipeline, noting the size of each batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def process_records(self, records, times=None):
        self.batches.append(len(records))
        return super().process_records(records, times)


def test_a_big_frame_goes_through_in_batches_and_its_chunk_is_acked_once_all_are() -> None:
    """A 5,000-record chunk: the processor sees slices of at most 2,000 records, the next
    hop gets the documents in several frames, every one exactly once, and the sender's
    chunk is acked once the next hop has acked them all."""
    lines = _lines(5000)
    processor = Recording()

    async def main() -> tuple[bytes, NextHop]:
        hop = NextHop(delay=0.05)
        hop_port = await hop.start()
        server = ForwardServer(processor, (LOOPBACK, 0), upstream=(LOOPBACK, hop_port))
        _, port = await server.start()
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        payload, size = pack_entries([event_time(1_800_000_000)] * len(lines),
                                     [{"log": line} for line in lines])
        writer.write(msgspec.msgpack.encode(["fw", payload, {"chunk": "c1", "size": size}]))
        await writer.drain()
        ack = await asyncio.wait_for(reader.read(1024), 30)
        # acked only once the next hop had acked every frame of it
        assert hop.frames == 3 and server.stats.acks == 1
        writer.close()
        await server.stop()
        await hop.stop()
        return ack, hop

    ack, hop = asyncio.run(main())
    assert msgspec.msgpack.decode(ack) == {"ack": "c1"}
    assert hop.entries == Counter(lines)
    assert SLICE == 2000 and processor.batches == [2000, 2000, 1000]
    assert processor.stats.in_ == processor.stats.out == 5000


class RefusingHop(NextHop):
    """A hop that closes the connection on a frame larger than ``limit`` bytes, as Fluent
    Bit's in_forward does past its Buffer_Max_Size; smaller frames it acks."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.refusals = 0

    def refuses(self, raw: bytes) -> bool:
        if len(raw) > self.limit:
            self.refusals += 1
            return True
        return False


def test_a_frame_the_hop_keeps_refusing_is_counted_and_said_once_and_kept(caplog) -> None:
    async def main() -> tuple[UpstreamClient, RefusingHop, bool]:
        hop = RefusingHop(limit=1000)
        port = await hop.start()
        client = UpstreamClient(LOOPBACK, port, ack_timeout=5, backoff_initial=0.02,
                                backoff_max=0.05)
        await client.start()
        big, size = pack_entries([0], [{"n": "x" * 3000}])
        future = client.submit("t", big, size)
        while hop.refusals < 2 * REFUSALS:  # refused again and again
            await asyncio.sleep(0.02)
        kept = not future.done()
        hop.limit = 1 << 20  # the receiver's buffer made large enough
        await asyncio.wait_for(future, 20)
        await client.close()
        await hop.stop()
        return client, hop, kept

    with caplog.at_level(logging.ERROR, logger="ikefilter"):
        client, hop, kept = asyncio.run(main())
    assert kept and client.acked == 1
    assert client.refused == 1
    said = [r for r in caplog.records if "refuses a frame" in r.getMessage()]
    assert len(said) == 1 and "Buffer_Max_Size" in said[0].getMessage()
