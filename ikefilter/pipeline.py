"""The one core call every adapter makes: a batch of input records in, a batch out.

``Pipeline.process_lines`` takes raw lines (text or JSON records, auto-detected per line);
``Pipeline.process_records`` takes records a shipper already decoded (Fluent Forward,
syslog-ng, rsyslog). Both return a list aligned 1:1 with the input: an ECS
:class:`~ikefilter.ecs.Event`, a record passed through unchanged (a dict), or ``None`` for an
event that a rule dropped or that went to the quarantine.
:class:`~ikefilter.stats.Stats` counts all of it. The per-item path is
:mod:`ikefilter.records`; the batch lane is :mod:`ikefilter.fastlane`.

No input stops a batch: a line longer than ``max_line`` is cut to it and tagged
``ikefilter_truncated``, a JSON record nested deeper than ``max_depth`` is a parse failure,
and a line that still raises becomes a tagged parse failure (``ikefilter_internal_error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from . import ecs
from .catalog import Catalog
from .catalog import load as load_catalog
from .fastlane import NOT_OURS, Lane
from .normalize import Normalizer, SeverityDialect
from .record import DEFAULT_SOURCE_KEYS
from .records import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LINE,
    DROPS,
    NonClavisterPolicy,
    Output,
    Reader,
    cut,
    json_line,
    text_values,
)
from .shaping import DEFAULT, Shaping
from .stats import Stats
from .wire import NOT_CLAVISTER

log = logging.getLogger("ikefilter")


Stage = Callable[[list[ecs.Event]], list[ecs.Event | None]]


class Pipeline:
    """Decode, normalize, then hand each batch of events to the site stages.

    Built once per process; the catalog, decoders and stages are reused for every batch.

    :param stages: called once per batch with the events (never the pass-through
        records); returns a list aligned with its input where ``None`` marks an event that
        must not be written (the stage counts it in :attr:`stats`). The plugin manager
        supplies it; without one, events go out as normalized.
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        stages: Stage | None = None,
        source_keys: Iterable[str] = DEFAULT_SOURCE_KEYS,
        non_clavister: NonClavisterPolicy = "pass",
        severity_dialect: SeverityDialect = "clavister",
        keep_original: bool = True,
        max_line: int = DEFAULT_MAX_LINE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        fast: bool = True,
        site: object = None,
        render: Callable[[list[Output]], list[Output]] | None = None,
        derive: Callable[[list, bool], list] | None = None,
        write_derived: bool = False,
        shaping: Shaping = DEFAULT,
    ):
        """:param max_line: longest line kept whole, in bytes (characters for ``str``
            lines and for a record's line); a longer one is cut to it and tagged.
        :param max_depth: deepest nesting of a JSON record line; a deeper one is a parse
            failure (``ikefilter_parse_failure``), never decoded.
        :param fast: split the lines of a batch together (:mod:`ikefilter.fastlane`); off,
            every line is split on its own (same output).
        :param site: the configured plugins behind ``stages``
            (:class:`~ikefilter.host.Site`), kept for whoever closes them at exit.
        :param render: called once per batch on the output after the site stages and the
            counts (:func:`ikefilter.ocsf.renderer`: the OCSF profile); None writes ECS.
        :param shaping: the site's ``[time]`` and ``[ecs]`` (:mod:`ikefilter.shaping`).
        """
        if max_line < 1 or max_depth < 1:
            raise ValueError("max_line and max_depth must be at least 1")
        self.catalog = catalog or load_catalog()
        self.normalizer = Normalizer(self.catalog, severity_dialect, keep_original, shaping)
        self.stages = stages
        self.site = site
        self.render = render
        self.source_keys = tuple(source_keys)
        self.max_line = max_line
        self.max_depth = max_depth
        self.stats = Stats()
        self.reader = Reader(self.normalizer, self.source_keys, non_clavister, max_line,
                             max_depth)
        self.derive, self.write_derived = derive, write_derived  # ikefilter.host.derived.Deriver
        self._faults_logged: set[str] = set()
        self.lane = Lane(self.normalizer.builders) if fast else None

    # -- entry points -----------------------------------------------------------------------

    def process_lines(self, lines: list[bytes] | list[str]) -> list[Output]:
        """Process one batch of lines (no newline). Text lines and JSON records may mix."""
        now = ecs.now()
        out: list[Output] = [None] * len(lines)
        texts = self._texts(lines) if self.lane is not None and lines else None
        rest: list[int] = []
        if texts is None:
            rest = list(range(len(lines)))
        else:
            plain: Sequence[int] = range(len(lines))
            limit = self.max_line
            if max(map(len, lines)) > limit or any("{" in text for text in texts):
                plain, records, originals, index = [], [], [], []
                for i, text in enumerate(texts):
                    if len(lines[i]) > limit:
                        rest.append(i)  # cut to the limit and tagged, on its own
                    elif json_line(text):
                        record = self.reader.json_record(text)
                        if record is None:
                            rest.append(i)  # the per-line path says why it is not one
                        else:
                            index.append(i)
                            records.append(record)
                            originals.append(text)
                    else:
                        plain.append(i)
                if index:
                    done = self._records(records, now, None, originals)
                    for i, item in zip(index, done, strict=True):
                        out[i] = item
            _place(self._lane(self.lane.lines, [texts[i] for i in plain], now), plain, out,
                   rest, lambda k: self.reader.line_not_ours(texts[plain[k]], NOT_CLAVISTER, now))
        for i in rest:
            line = lines[i]
            try:
                out[i] = self.reader.from_line(line, now)
            except Exception as exc:  # one line never stops the batch
                out[i] = self.reader.fault(line, exc, now)
        return self._finish(out)

    def line_record(self, line: bytes | str) -> dict | None:
        """The record :meth:`process_lines` reads ``line`` as: a JSON object line within
        ``max_line`` and ``max_depth``. None for a line it reads as text, or as a failure
        (too long, too deep, not a JSON object)."""
        if len(line) > self.max_line:
            return None
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        return self.reader.json_record(text) if json_line(text) else None

    def process_records(
        self, records: list[dict], times: Sequence[str | None] | None = None
    ) -> list[Output]:
        """Process one batch of records a shipper already decoded into mappings.

        :param times: the shipper's event time of each record (RFC 3339 UTC), aligned with
            ``records``: used for an event whose line and record carry no time of their own.
            Any sequence of that length; an item is read only for such an event. An item is
            None where the shipper gave no time, and ``INVALID_TIME`` (``""``) where it gave
            one that is not a time: such an event is stamped with the clock and tagged
            ``ikefilter_invalid_time``, as is one whose record's own time is not a time.

        A value that came as bytes (msgpack ``bin``: Fluentd packs a Ruby string that is not
        marked UTF-8 so) is read as UTF-8 text, in the record itself.
        """
        if times is not None and len(times) != len(records):
            raise ValueError(f"{len(times)} times for {len(records)} records")
        for record in records:
            if type(record) is dict:
                text_values(record)
        return self._finish(self._records(records, ecs.now(), times))

    def _records(self, records: list, now: str, times: Sequence[str | None] | None = None,
                 originals: list[str] | None = None) -> list[Output]:
        """The output of each record; ``originals``: the JSON text of each, where it came
        as a line."""
        out: list[Output] = [None] * len(records)
        rest: list[int] = []
        index, lines, lenders = [], [], []
        keys, limit = self.source_keys, self.max_line
        # A record that holds only its line has no time, host or PRI to lend it.
        alone = 1 if self.reader.lone_line_is_bare else 0
        for i, r in enumerate(records):
            if self.lane is not None and type(r) is dict:
                for key in keys:
                    value = r.get(key)
                    if isinstance(value, str):
                        if (len(value) <= limit and "\n" not in value and "\r" not in value
                                and value[:1] != "{"):
                            index.append(i)
                            lines.append(value)
                            lenders.append(None if len(r) == alone else r)
                        else:
                            rest.append(i)
                        break
                else:
                    rest.append(i)  # split pairs, or no line: the record as a whole
            else:
                rest.append(i)
        if index:
            picked = _Picked(times, index) if times is not None else None
            _place(self._lane(self.lane.lines, lines, now, lenders, picked), index, out, rest,
                   lambda k: self.reader.not_clavister(records[index[k]], lines[k], NOT_CLAVISTER,
                                                 now if times is None else
                                                 times[index[k]] or now))
        for i in rest:
            r = records[i]
            when = now
            try:
                if times is not None:
                    when = times[i] or now
                if isinstance(r, dict):
                    out[i] = self.reader.from_record(
                        r, now, None if originals is None else originals[i],
                        shipper=None if times is None else times[i])
                else:
                    out[i] = self.reader.failure(cut(repr(r), self.max_line),
                                           "record is not a mapping", when)
            except Exception as exc:
                out[i] = self.reader.fault(r if originals is None else originals[i], exc, when)
        return out

    def count_unencodable(self, items: list[Output]) -> None:
        """``items``, outputs of a batch, were written as failure events tagged
        ``ikefilter_unencodable`` (JSON cannot carry them): counted as what was written, a
        tagged event, no longer as a record passed through or an untagged event."""
        stats = self.stats
        for item in items:
            if type(item) is not ecs.Event:
                stats.passthrough -= 1
                stats.tagged += 1
            elif not (item.tags and _failure_tagged(item.tags)):
                stats.tagged += 1

    # -- the batch lane ---------------------------------------------------------------------

    def _texts(self, lines: list[bytes] | list[str]) -> list[str] | None:
        """The lines as text, one decode for the batch; None when a line holds a newline
        (each line then goes on its own)."""
        text = (b"\n".join(lines).decode("utf-8", "replace") if isinstance(lines[0], bytes)
                else "\n".join(lines))
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        texts = text.split("\n")
        return texts if len(texts) == len(lines) else None

    def _lane(self, take: Callable, items: list, *args) -> list:
        """What the lane makes of ``items``; all None (each on its own) if it raised."""
        if not items:
            return []
        try:
            return take(items, *args)
        except Exception as exc:  # never lose a batch to it: the lines go one by one
            kind = f"batch lane {type(exc).__name__}"
            if kind not in self._faults_logged:
                self._faults_logged.add(kind)
                log.error("the batch lane raised %s; its lines are taken one by one "
                          "(logged once)", type(exc).__name__)
            log.debug("traceback of the batch lane", exc_info=exc)
            return [None] * len(items)

    # -- per batch --------------------------------------------------------------------------

    def _finish(self, out: list[Output]) -> list[Output]:
        """Run the site stages over the batch's events and count it all in :attr:`stats`."""
        stats = self.stats
        if self.stages is not None:
            index = [i for i, item in enumerate(out) if type(item) is ecs.Event]
            if index:
                staged = self.stages([out[i] for i in index])
                if len(staged) != len(index):
                    raise RuntimeError(
                        f"site stages returned {len(staged)} events for {len(index)}"
                    )
                for i, item in zip(index, staged, strict=True):
                    out[i] = item
        # Counted once the stages are through, so a batch that raised counts nothing.
        stats.in_ += len(out)
        for drop, rule in DROPS:
            dropped = out.count(drop)
            if dropped:
                out = [None if item is drop else item for item in out]
                stats.dropped += dropped
                stats.dropped_by_rule[rule] = stats.dropped_by_rule.get(rule, 0) + dropped
        written = len(out) - out.count(None)
        stats.out += written
        tag_lists = [item.tags for item in out if type(item) is ecs.Event]
        events = len(tag_lists)
        tagged = 0
        if tag_lists.count(_PLAIN_TAGS) != events:
            tagged = sum(1 for tags in tag_lists
                         if tags is not None and tags != _PLAIN_TAGS and _failure_tagged(tags))
        stats.tagged += tagged
        stats.passthrough += written - events
        if self.derive is not None:
            out = self.derive(out, self.write_derived)
        return out if self.render is None else self.render(out)


def _place(events: list, index: Sequence[int], out: list, rest: list[int],
           not_ours: Callable[[int], Output]) -> None:
    """The lane's events into ``out`` at ``index``; where it made none, the index to
    ``rest`` (for the per-line path); where the line is not Clavister's, ``not_ours(k)`` of
    its position ``k`` in ``index``."""
    for k, (i, event) in enumerate(zip(index, events, strict=True)):
        if event is None:
            rest.append(i)
        elif event is NOT_OURS:
            out[i] = not_ours(k)
        else:
            out[i] = event


class _Picked:
    """``items[index[k]]`` for each ``k``, read only when asked."""

    __slots__ = ("index", "items")

    def __init__(self, items: Sequence, index: list[int]):
        self.items, self.index = items, index

    def __getitem__(self, k: int):
        return self.items[self.index[k]]

    def __len__(self) -> int:
        return len(self.index)


_PLAIN_TAGS = ["clavister", "ike"]


def _failure_tagged(tags: list[str]) -> bool:
    return any(t.startswith("ikefilter_") for t in tags)
