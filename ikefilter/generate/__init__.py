"""Realistic synthetic lines for every catalog message in every wire shape.

Seeded and reproducible, so a machine with no firewall can run the whole job, and tests
and benchmarks share one corpus.

The clean corpus (the default): line ``i`` is message ``i mod len(catalog)`` in shape
``(i div len(catalog)) mod len(shapes)``: any 28 x 11 lines cover every pair, and every
value is written the one way the catalog describes.

The wild mix (``mix="wild"``): what a site's day brings. Every shape of :data:`WILD_SHAPES`
interleaved at random; messages weighted by how often they come (tunnels are set up, rekeyed
and torn down all day, failures are rare); about half of the IKE lines carry at least one of
the value variants of :data:`VARIANTS` (each at its rate among the lines that can carry it);
and a few per cent of the records are other Clavister categories or other programs
altogether. With ``variants``: every line carries exactly those variants, so each can be
measured alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TextIO

import msgspec

from ..catalog import Catalog
from .clean import JSON_SHAPES, MIXES, SHAPES, clean_lines
from .wild import (
    ALL_SHAPES,
    RECORD_KINDS,
    VALUE_VARIANTS,
    VARIANTS,
    WILD_JSON_SHAPES,
    WILD_SHAPES,
    WILD_TEXT_SHAPES,
    Sample,
    applies,
    samples,
    variant_help,
)

__all__ = [
    "ALL_SHAPES",
    "JSON_SHAPES",
    "MIXES",
    "RECORD_KINDS",
    "SHAPES",
    "VALUE_VARIANTS",
    "VARIANTS",
    "WILD_JSON_SHAPES",
    "WILD_SHAPES",
    "WILD_TEXT_SHAPES",
    "Sample",
    "applies",
    "lines",
    "samples",
    "variant_help",
    "write",
]


def lines(catalog: Catalog, count: int, seed: int = 1, shapes: tuple[str, ...] | None = None,
          start: datetime | None = None, *, mix: str = "clean",
          variants: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield ``count`` lines (text lines and JSON records), reproducibly for one seed.

    ``mix``: ``"clean"`` (the default corpus) or ``"wild"``; ``variants``: every line carries
    exactly these (see :func:`samples`).
    """
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; known: {', '.join(MIXES)}")
    if mix == "wild" or variants:
        if mix == "wild" and variants:
            raise ValueError("the wild mix draws its own variants: give one or the other")
        for sample in samples(catalog, count, seed, shapes, mix, tuple(variants), start):
            yield sample.line
        return
    shapes = SHAPES if shapes is None else tuple(shapes)
    unknown = [s for s in shapes if s not in ALL_SHAPES]
    if unknown:
        raise ValueError(f"unknown shape {unknown[0]!r}; known: {', '.join(ALL_SHAPES)}")
    t0 = start or datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
    yield from clean_lines(catalog, count, seed, shapes, t0, msgspec.json.Encoder().encode)


def write(lines: Iterable[str], out: TextIO) -> None:
    """Write ``lines`` to ``out``, one a line, a thousand at a time, then flush."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 1000:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()
