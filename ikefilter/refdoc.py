"""Read the vendor's Log Reference text (one chapter) into plain message records.

The text comes from a PDF: section numbers are followed by a non-breaking space, long
titles are cut short with ``[...]`` (the full text is under "Log Message"), a field's text
may run over several lines, and an empty field holds a lone space or nothing at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FIELDS = {
    "Log Categories": "categories",
    "Log Message": "message",
    "Default Log Severity": "severity",
    "Parameters": "parameters",
    "Explanation": "explanation",
    "Gateway Action": "gateway_action",
    "Action Description": "action_description",
    "Proposed Action": "proposed_action",
}

_SPACE = "[ \u00a0\t]"
_CHAPTER = re.compile(rf"^(?P<num>\d+\.\d+)\.?{_SPACE}+(?P<title>\S.*)$")
_SECTION = re.compile(
    rf"^(?P<num>\d+\.\d+\.\d+)\.?{_SPACE}+\[ID:{_SPACE}*(?P<id>\d+)\]{_SPACE}*(?P<title>.*)$"
)


class ReferenceError(ValueError):
    """The text does not follow the Log Reference layout; the message names the line."""


@dataclass
class Section:
    """One message as the reference prints it, every field as text."""

    id: int
    section: str
    title: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Chapter:
    number: str
    title: str
    intro: str
    sections: list[Section]


def _clean(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def parse(text: str) -> Chapter:
    """Parse one chapter of the Log Reference.

    Every field of every section is returned; a section missing a field, or a field name
    seen twice, is an error naming the line, so a change in the vendor's layout is caught
    at build time rather than producing a thin catalog.
    """
    chapter: Chapter | None = None
    current: Section | None = None
    key: str | None = None
    buf: list[str] = []
    intro: list[str] = []

    def flush() -> None:
        if current is not None and key is not None:
            current.fields[key] = _clean(" ".join(buf))

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\n")
        stripped = line.replace("\u00a0", " ").strip()
        m = _SECTION.match(line)
        if m:
            flush()
            if chapter is None:
                raise ReferenceError(f"line {lineno}: section before the chapter heading")
            current = Section(int(m["id"]), m["num"], _clean(m["title"]))
            chapter.sections.append(current)
            key, buf = None, []
            continue
        if chapter is None:
            m = _CHAPTER.match(line)
            if m:
                chapter = Chapter(m["num"], _clean(m["title"]), "", [])
            continue
        if current is None:
            if stripped:
                intro.append(stripped)
            continue
        if stripped in FIELDS and line.strip() == stripped:
            flush()
            key = FIELDS[stripped]
            if key in current.fields:
                raise ReferenceError(f"line {lineno}: {stripped!r} twice in [ID: {current.id}]")
            buf = []
            continue
        if key is None:
            if stripped:
                raise ReferenceError(f"line {lineno}: text outside any field in [ID: {current.id}]")
            continue
        buf.append(stripped)
    flush()
    if chapter is None:
        raise ReferenceError("no chapter heading found")
    chapter.intro = _clean(" ".join(intro))
    for sec in chapter.sections:
        missing = [name for name, k in FIELDS.items() if k not in sec.fields]
        if missing:
            raise ReferenceError(f"[ID: {sec.id}] lacks {', '.join(missing)}")
    return chapter


def split_list(text: str) -> list[str]:
    """Split a comma-separated field ("ip, iface", "IKE,IPSEC") into its items."""
    return [item.strip() for item in text.split(",") if item.strip()]
