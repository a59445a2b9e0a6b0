"""The batch lane: a whole batch of lines split by C-level primitives, then built.

One regex pass over the batch text finds every line's header (:data:`wire.HEADER_PATTERN`).
The ``name=value`` pairs of all the bodies are rewritten into JSON objects, one per line, by
a few passes over the batch (:func:`wire.pairs_json`), and msgspec decodes each line's object:
into its message's Struct when the line has only parameters its message lists, else into a
dictionary. Each line's pairs then go to the builder of its message
(:mod:`ikefilter.builders`), the one every path uses, so the values are read by the same rules
whichever way a line was split.

A line whose splitting the rewrite cannot do exactly (a bracket, an escape JSON would read,
a bare value of several words, an odd quote, a name that is not one) is left to the
per-line splitter (:func:`wire.decode_line`): ``None`` in its place. It costs that one line
one more look; the batch is never rewritten or decoded again for it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

import msgspec

from . import ecs, values, wire
from .builder_table import Builders
from .record import lent_time, record_host, record_pri

_LINES = wire.LINES
_AT = wire.GROUP
_CATS, _BODY, _EFW = _AT["cats"], _AT["body"], _AT["efw"]
_PRI, _RECV, _RECVPRI, _TS5424, _TS3164, _DEVTIME = (
    _AT["pri"], _AT["recv"], _AT["recvpri"], _AT["ts5424"], _AT["ts3164"], _AT["devtime"])
_HOSTS = (_AT["host5424"], _AT["host3164"], _AT["recvhost"])

#: in the place of a line that has no header and no ``id=``: not Clavister's
NOT_OURS = object()
_NO_PAIRS = "_="
_NO_PAIRS_JSON = b'{"_":""}'
_NAMES = frozenset(values.KINDS) | {"id"}


class Split(NamedTuple):
    """A batch after the decode stage: each line's header groups and its pairs (its message's
    Struct, or a dictionary; None where the rewrite could not split it)."""

    found: list[tuple]
    pairs: list[object]


class Lane:
    """Built once per pipeline from its builders; used for every batch."""

    def __init__(self, builders: Builders):
        self.builders = builders
        self.local = builders.shaping.local_time
        structs = builders.structs()
        # A union tagged on "id": a line of a catalogued message with no other parameter
        # decodes into its message's Struct; any other line into a dictionary.
        self._decode = _decoding(
            msgspec.json.Decoder(functools.reduce(operator.or_, structs), strict=False).decode
            if structs else None)

    def lines(self, texts: list[str], now: str,
              records: Sequence[dict | None] | None = None,
              times: Sequence[str | None] | None = None) -> list[ecs.Event | None]:
        """Events for the lines (no newline in any), aligned with ``texts``; None where the
        per-line splitter must decide; :data:`NOT_OURS` for a line that cannot be ours.

        :param records: the records the lines came from, for the time, host and PRI a line
            lacks (None: a record with nothing to lend); ``times``: the shipper's event time
            of each, used before ``now``.
        """
        return self.build(self.split(texts), texts, now, records, times)

    def split(self, texts: list[str]) -> Split:
        """The decode stage of :meth:`lines`: each line's header groups and pairs."""
        found = _LINES.findall("\n".join(texts))
        if len(found) != len(texts):
            return Split(found, [None] * len(texts))  # (a line that held a newline)
        # A line without a header may be pairs alone ("prio=2 id=530 ..."): all of it, if it
        # has an id (else it is not Clavister's: a pair that is no pair holds its place).
        bodies = [g[_BODY] if g[_CATS] else text if "id=" in text else _NO_PAIRS
                  for g, text in zip(found, texts, strict=True)]
        pairs = _pairs(bodies, self._decode)
        if _NO_PAIRS in bodies:
            for k, body in enumerate(bodies):
                if body is _NO_PAIRS:  # (the constant itself, never a line's text)
                    pairs[k] = NOT_OURS
        return Split(found, pairs)

    def build(self, split: Split, texts: list[str], now: str,
              records: Sequence[dict | None] | None = None,
              times: Sequence[str | None] | None = None) -> list[ecs.Event | None]:
        """The normalize stage of :meth:`lines`."""
        found = split.found
        out: list[ecs.Event | None] = [None] * len(texts)
        by_text, builders = self.builders.by_text, self.builders
        clock = datetime.now(timezone.utc)
        # PRI and time are read once per distinct pair (a batch holds few).
        headers: dict[tuple, tuple] = {}
        for i, p in enumerate(split.pairs):
            if p is None:
                continue
            if p is NOT_OURS:
                out[i] = p
                continue
            g = found[i]
            pairs = type(p) is dict  # (else the Struct of a catalogued message)
            if pairs and not (p.keys() <= _NAMES or wire.names_ok(p.keys() - _NAMES)):
                continue
            if g[_CATS]:
                if pairs and not g[_EFW] and "id" not in p:
                    continue  # "ERROR: disk full" fits the header: only EFW or an id is ours
                key = (g[_PRI], g[_RECV], g[_RECVPRI], g[_TS5424], g[_TS3164], g[_DEVTIME])
                fields = headers.get(key)
                if fields is None:
                    fields = headers[key] = wire.header_fields(g, clock, self.local)
                pri, time, _, stamp = fields
                notes = None if stamp is None or time is not None else [
                    wire.invalid_timestamp(stamp)]
                host = g[_HOSTS[0]] or g[_HOSTS[1]] or g[_HOSTS[2]] or None
                cats = g[_CATS].split(",")
            elif not pairs or "id" in p:
                pri = time = host = cats = notes = None
            else:
                continue
            bad_record, bad_shipper = None, False
            if records is not None:
                record = records[i]
                if time is None:
                    # (the shipper's time read only where needed: it may be converted)
                    time, bad_record, bad_shipper = lent_time(
                        record, None, times[i] if times is not None else None)
                if record is not None:
                    if host is None:
                        host = record_host(record)
                    if pri is None:
                        pri = record_pri(record)
            if not pairs:
                out[i] = event = p.build(pri, time, cats, host, texts[i], now, notes)
            else:
                raw_id = p.get("id")
                build = by_text.get(raw_id)
                if build is None:
                    build = builders(raw_id)
                out[i] = event = build(p, pri, time, cats, host, texts[i], now, notes)
            if bad_record is not None or bad_shipper:  # a time that is not one: not used
                ecs.invalid_time(event, bad_record)
        return out


# Characters that may make the rewrite refuse a body, or read it otherwise than the splitter
# does (with any character that is not ASCII).
_ODD = "[]\\"
# Below this many bodies, a batch the rewrite refuses is rewritten line by line.
_FEW = 8


def _odd_lines(joined: str, bodies: list[str]) -> list[int]:
    """The indexes of the bodies (joined by newlines in ``joined``) that hold a bracket, a
    backslash or a character that is not ASCII; looked for in C, one step per such body."""
    odd: set[int] = set()
    if not joined.isascii():
        odd.update(itertools.compress(itertools.count(),
                                      map(operator.not_, map(str.isascii, bodies))))
    ends: list[int] | None = None
    for char in _ODD:
        at = joined.find(char)
        if at >= 0 and ends is None:
            # where each body ends in ``joined``: its length, those before it, their newlines
            ends = list(map(operator.add, itertools.accumulate(map(len, bodies)),
                            itertools.count()))
        while at >= 0:
            k = bisect.bisect_left(ends, at)
            odd.add(k)
            at = joined.find(char, ends[k] + 1)
    return sorted(odd)


def _decoding(structs: Callable[[bytes], object] | None) -> Callable[[bytes], object]:
    """A line's JSON object as its message's Struct, else as a dictionary, else None."""
    if structs is None:
        return wire.decode_pairs

    def decode(chunk: bytes) -> object:
        try:
            return structs(chunk)
        except msgspec.ValidationError:
            return wire.decode_pairs(chunk)
        except msgspec.DecodeError:
            return None

    return decode


def _pairs(bodies: list[str], decode: Callable[[bytes], object] = wire.decode_pairs
           ) -> list[object]:
    """Each body's pairs, or None where the rewrite cannot split it exactly."""
    out: list[object] = [None] * len(bodies)
    joined = "\n".join(bodies)
    odd = _odd_lines(joined, bodies)
    if odd:
        # The bodies that may be odd are rewritten one by one, the others together.
        odd_set = set(odd)
        plain = [k for k in range(len(bodies)) if k not in odd_set]
        _rewrite(bodies, plain, "\n".join([bodies[k] for k in plain]), decode, out)
        for k in odd:
            _rewrite(bodies, [k], bodies[k], decode, out)
    else:
        _rewrite(bodies, range(len(bodies)), joined, decode, out)
    return out


def _rewrite(bodies: list[str], index: Sequence[int], joined: str,
             decode: Callable[[bytes], object], out: list[object]) -> None:
    """Put the pairs of the bodies at ``index`` (``joined`` by newlines) in ``out``.

    A rewrite that refuses them (an odd quote in one, a quote inside a word) is tried again
    on each half, so that only the bodies it refuses are left to the per-line splitter."""
    if not index:
        return
    data = wire.pairs_json(joined)
    if data is not None:
        # Each line decoded on its own: one that is not JSON costs only itself.
        for k, chunk in zip(index, data.split(b"\n"), strict=True):
            if chunk != _NO_PAIRS_JSON:
                out[k] = decode(chunk)
    elif len(index) > 1:
        halves = (index[:len(index) // 2], index[len(index) // 2:]) if len(index) > _FEW else (
            [k] for k in index)
        for half in halves:
            _rewrite(bodies, half, "\n".join([bodies[k] for k in half]), decode, out)
