"""Paths, corpora, and the timing of each stage and of the whole path.

Every figure is the best of ``reps`` runs over one in-memory corpus, with the garbage
collector on as in production. Time is the process's CPU time (``time.process_time``) on a
pinned core: on a shared machine the wall clock also counts the time other processes held
the core, which says nothing about ikefilter. Wall-clock times are kept in the results too.
"""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ikefilter import generate
from ikefilter.adapters import lines
from ikefilter.pipeline import Pipeline
from ikefilter.record import DEFAULT_SOURCE_KEYS

TEXT_SHAPES = tuple(s for s in generate.SHAPES if s not in generate.JSON_SHAPES)
FRAME_RECORDS = 1000
STAGES = ("read", "decode", "normalize", "plugins", "encode")


@dataclass(frozen=True)
class PathSpec:
    name: str
    title: str
    kind: str  # "lines": bytes in, JSON lines out; "forward": PackedForward frames in
    shapes: tuple[str, ...]


PATHS = (
    PathSpec("raw-bracketed", "raw syslog, <PRI>[time] EFW: lines", "lines", ("bracketed",)),
    PathSpec("raw-mix", "raw syslog, every text shape", "lines", TEXT_SHAPES),
    PathSpec("json-split", "JSON records, pairs pre-split", "lines", ("split",)),
    PathSpec("json-log", 'JSON records {"log": line}', "lines", ("json-log",)),
    PathSpec("forward", 'PackedForward frames of 1000 {"log": line}', "forward", ("bracketed",)),
)
PATH_NAMES = tuple(p.name for p in PATHS)


def forward_protocol():
    """``ikefilter.adapters.forward.protocol``, or raise ModuleNotFoundError naming what is
    missing."""
    from ikefilter.adapters.forward import protocol

    if not hasattr(protocol, "decode_frame"):
        raise ModuleNotFoundError("ikefilter.adapters.forward.protocol has no decode_frame",
                                  name="ikefilter.adapters.forward.protocol")
    return protocol


@dataclass
class Corpus:
    spec: PathSpec
    lines: list[str]
    data: bytes = b""
    frames: list[bytes] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.lines)


def make_corpus(spec: PathSpec, count: int, seed: int = 1, catalog=None) -> Corpus:
    from ikefilter.catalog import load

    text = list(generate.lines(catalog or load(), count, seed, spec.shapes))
    corpus = Corpus(spec, text)
    if spec.kind == "lines":
        corpus.data = ("\n".join(text) + "\n").encode()
    else:
        corpus.frames = pack_frames(text)
    return corpus


def pack_frames(text: list[str], per_frame: int = FRAME_RECORDS,
                start_s: int = 1_795_000_000) -> list[bytes]:
    """PackedForward frames ``[tag, bin(entries), {"size": n}]`` of ``{"log": line}`` records,
    with EventTime (ext 0) times, as Fluent Bit sends them."""
    enc = msgspec.msgpack.Encoder()
    frames = []
    for i in range(0, len(text), per_frame):
        chunk = text[i:i + per_frame]
        payload = b"".join(
            enc.encode((msgspec.msgpack.Ext(0, (start_s + i + j).to_bytes(4, "big") + bytes(4)),
                        {"log": line}))
            for j, line in enumerate(chunk)
        )
        frames.append(enc.encode(("clavister.ike", payload, {"size": len(chunk)})))
    return frames


# -- timing -----------------------------------------------------------------------------------


clock = time.process_time


def best_of(fn: Callable[[], Any], reps: int) -> tuple[float, list[float]]:
    """The least CPU time of ``reps`` runs, and every run's (cpu, wall) seconds."""
    samples = []
    for _ in range(reps):
        gc.collect()
        w0 = time.perf_counter()
        t0 = clock()
        fn()
        samples.append((clock() - t0, time.perf_counter() - w0))
    return min(cpu for cpu, _ in samples), samples


def figure(seconds: float, events: int) -> dict:
    return {"us": seconds / events * 1e6, "eps": events / seconds if seconds else None}


def ikefilter_e2e(corpus: Corpus, pipeline: Pipeline) -> Callable[[], Any]:
    """The whole path: ``lines.run`` BytesIO to BytesIO, or frames decoded, processed and
    encoded as JSON lines."""
    if corpus.spec.kind == "lines":
        data = corpus.data

        def run_lines():
            lines.run(pipeline, [io.BytesIO(data)], io.BytesIO())

        return run_lines
    decode_frame = forward_protocol().decode_frame
    encoder = msgspec.json.Encoder()
    frames = corpus.frames

    def run_forward():
        out = io.BytesIO()
        for frame in frames:
            f = decode_frame(frame)
            results = pipeline.process_records(f.records)
            out.write(encoder.encode_lines([r for r in results if r is not None]))

    return run_forward


def naive_e2e(corpus: Corpus, naive) -> Callable[[], Any]:
    if corpus.spec.kind == "lines":
        data = corpus.data
        return lambda: naive.run(io.BytesIO(data), io.BytesIO())
    frames = corpus.frames
    return lambda: naive.run_forward(frames, io.BytesIO())


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _source_line(record: dict) -> str | None:
    for key in DEFAULT_SOURCE_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return value
    return None


def _texts(batch: list[bytes]) -> list[str]:
    """A batch of raw lines as the pipeline reads it: one decode of the batch, then split."""
    return b"\n".join(batch).decode("utf-8", "replace").split("\n")


def stage_times(corpus: Corpus, pipeline: Pipeline, reps: int, catalog=None) -> dict:
    """Seconds (best of ``reps``) for each stage over the whole corpus, as the batch lane
    (``ikefilter.fastlane``) runs them.

    read = splitting the input into batches of text lines (lines paths only); decode = the
    lane's split (headers and pairs in one regex pass and a JSON rewrite per batch, msgspec per
    line), after the JSON record decode on the JSON paths and the frame decode on forward;
    for records whose pairs a shipper split, the JSON record decode alone; normalize = the
    per-message builders; plugins = the stage callable, once per batch; encode = msgspec
    ``encode_lines``. What is left (pipeline glue, the per-line splitter for lines the batch
    rewrite leaves to it, I/O) is ``other``.
    """
    spec = corpus.spec
    lane = pipeline.lane
    now = _now()
    result: dict[str, float | None] = dict.fromkeys(STAGES)
    record_decoder = msgspec.json.Decoder(list[dict])
    split_records = spec.shapes == ("split",)

    def lines_of(records: list[dict]) -> list[str]:
        return [line for line in map(_source_line, records) if line is not None]

    if spec.kind == "lines":
        data = corpus.data

        def read():
            return [_texts(b) for b in lines.iter_batches(io.BytesIO(data))]

        result["read"], _ = best_of(read, reps)
        texts = read()
        if split_records:
            def decode():
                return [(record_decoder.decode("[" + ",".join(t) + "]"), t, None, None)
                        for t in texts]
        elif set(spec.shapes) & generate.JSON_SHAPES:
            def decode():
                out = []
                for t in texts:
                    records = record_decoder.decode("[" + ",".join(t) + "]")
                    found = lines_of(records)
                    out.append((lane.split(found), found, records, None))
                return out
        else:
            def decode():
                return [(lane.split(t), t, None, None) for t in texts]
    else:
        decode_frame = forward_protocol().decode_frame
        frames = corpus.frames

        def decode():
            out = []
            for frame in frames:
                f = decode_frame(frame)
                found = lines_of(f.records)
                out.append((lane.split(found), found, f.records, None))
            return out

    result["decode"], _ = best_of(decode, reps)
    decoded = decode()

    def build(d, t, now, records=None, times=None):
        if split_records:
            return [pipeline.reader.split(r, now, text) for r, text in zip(d, t, strict=True)]
        return lane.build(d, t, now, records, times)

    def normalize():
        # each batch dropped once built, as the pipeline drops each batch once written:
        # holding every event alive would bill the collector's walks over them here
        for d, t, records, times in decoded:
            if records is None:
                build(d, t, now)
            else:
                build(d, t, now, records, times)

    def events_of():
        return [[e for e in (build(d, t, now) if records is None else
                             build(d, t, now, records, times)) if e is not None]
                for d, t, records, times in decoded]

    result["normalize"], _ = best_of(normalize, reps)

    stages = pipeline.stages
    if stages is not None:
        samples = []
        for _ in range(reps):
            gc.collect()
            took = 0.0
            for batch in events_of():
                # stages change events in place: fresh ones for every batch, made untimed
                t0 = clock()
                stages(batch)
                took += clock() - t0
            samples.append(took)
        result["plugins"] = min(samples)
        events = [[e for e in stages(batch) if e is not None] for batch in events_of()]
    else:
        events = events_of()

    encoder = msgspec.json.Encoder()

    def encode():
        for batch in events:
            encoder.encode_lines(batch)

    result["encode"], _ = best_of(encode, reps)
    return result
