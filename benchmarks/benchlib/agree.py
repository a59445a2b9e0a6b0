"""Check that ikefilter and the naive filter produce the same events, so a ratio is fair."""

from __future__ import annotations

import json

import msgspec

from .measure import Corpus
from .sites import PLAIN

REQUIRED = ("event.code", "event.action", "source.ip")
PLAIN_FIELDS = REQUIRED + (
    "@timestamp", "message", "event.category", "event.type", "event.outcome", "event.severity",
    "log.level", "log.syslog", "source.port", "destination.ip", "destination.port", "network",
    "user.name", "related.ip", "related.user", "observer.hostname", "clavister.ike",
    "clavister.ipsec", "clavister.categories",
)
# With redaction the pseudonyms differ by construction (keyed differently): compare where
# they are, not what they are.
PLUGIN_FIELDS = REQUIRED + (
    "event.severity", "log.level", "clavister.original_severity", "source.port",
    "has:source.address", "has:destination.address", "has:event.original", "len:related.ip",
    "len:related.user",
)

_MISSING = object()


def get(doc: dict, path: str):
    if path.startswith("has:"):
        return get(doc, path[4:]) is not _MISSING
    if path.startswith("len:"):
        value = get(doc, path[4:])
        return len(value) if isinstance(value, list) else None
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def ikefilter_docs(corpus: Corpus, pipeline, count: int) -> list:
    enc = msgspec.json.Encoder()
    if corpus.spec.kind == "lines":
        results = pipeline.process_lines([t.encode() for t in corpus.lines[:count]])
    else:
        results = pipeline.process_records([{"log": t} for t in corpus.lines[:count]])
    return [json.loads(enc.encode(r)) if r is not None else None for r in results]


def naive_docs(corpus: Corpus, naive, count: int) -> list:
    if corpus.spec.kind == "lines":
        return [naive.process_line(t) for t in corpus.lines[:count]]
    return [naive.process_record({"log": t}) for t in corpus.lines[:count]]


def compare(corpus: Corpus, pipeline, naive, variant: str, count: int = 2000) -> dict:
    ike = ikefilter_docs(corpus, pipeline, count)
    ref = naive_docs(corpus, naive, count)
    fields = PLAIN_FIELDS if variant == PLAIN else PLUGIN_FIELDS
    agree = dict.fromkeys(fields, 0)
    first: dict[str, dict] = {}
    same_docs = 0
    for i, (a, b) in enumerate(zip(ike, ref, strict=True)):
        a = a or {}
        b = b or {}
        if "ingested" in a.get("event", {}) and "ingested" in b.get("event", {}):
            b["event"]["ingested"] = a["event"]["ingested"]  # each filter's own clock
        if a == b:
            same_docs += 1
        for f in fields:
            va, vb = get(a, f), get(b, f)
            if va == vb:
                agree[f] += 1
            elif f not in first:
                first[f] = {"line": i, "ikefilter": _show(va), "naive": _show(vb)}
    n = len(ike)
    return {
        "sample": n,
        "required_ok": all(agree[f] == n for f in REQUIRED),
        "fields_agree": {f: agree[f] for f in fields},
        "identical_documents": same_docs if variant == PLAIN else None,
        "first_mismatch": first,
    }


def _show(value):
    return "(absent)" if value is _MISSING else value
