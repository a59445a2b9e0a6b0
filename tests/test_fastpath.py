"""The fast paths (msgspec pair decoding and typing) give exactly what the exact paths give."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikefilter import catalog, generate, wire
from ikefilter.normalize import Normalizer

NOW = "2026-11-26T12:00:00.000Z"
ENC = msgspec.json.Encoder()

ODD_BODIES = [
    'prio=2 id=530 action=correct the data localip=1.2.3.4',
    "prio=2 id=530  localip=1.2.3.4",
    "prio=2 id=530 url=a=b",
    'prio=2 id=530 localid="oops',
    'prio=2 id=530 q="a \\"b\\" c" localip=1.2.3.4',
    'prio=2 id=530 reason="" localip=1.2.3.4',
    'prio=2 id=530 a="x"b=1',
    "prio=2 id=530 [conn localip=1.2.3.4 ]",
    "prio=2 id=530 localip=1.2.3.999 localport=70000 localikespi=0xABC initiator=yes",
    "prio=2 id=530 localip=::FFFF:1.2.3.4 remoteip= count=-1 rekeytime=",
    "prio=9 id=530 localip=01.2.3.4",
    "prio=2 id=530 initiator=TRUE ikeversion=2 lifetime=3600",
]


def _lines() -> list[str]:
    cat = catalog.load()
    text = [
        line for line in generate.lines(cat, 28 * len(generate.SHAPES) * 5, seed=11)
        if not line.startswith("{")
    ]
    return text + [f"<134>[2026-11-26 10:00:00] EFW: IKE: {b}" for b in ODD_BODIES]


@pytest.fixture(scope="module")
def normalizers() -> tuple[Normalizer, Normalizer]:
    cat = catalog.load()
    return Normalizer(cat, fast=True), Normalizer(cat, fast=False)


def test_pairs_fast_equals_exact_on_corpus():
    taken = 0
    for line in _lines():
        m = wire._HEADER.match(line)
        body = line[m.end():]
        assert wire.split_pairs(body) == wire.split_pairs_exact(body), body
        taken += wire._fast_pairs(body) is not None
    # The fast path must actually carry the corpus, or this test proves nothing.
    assert taken > len(_lines()) * 0.9


def test_normalize_fast_equals_exact_on_corpus(normalizers):
    fast, exact = normalizers
    for line in _lines():
        d = wire.decode_line(line)
        assert ENC.encode(fast.normalize(d, NOW)) == ENC.encode(exact.normalize(d, NOW)), line


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["prio", "id", "localip", "remoteip", "localport", "initiator", "localikespi",
                     "rekeytime", "proto", "userid", "ip", "count", "reason", "other"]),
    st.one_of(st.text(max_size=12), st.sampled_from(
        ["530", "1.2.3.4", "::1", "500", "70000", "true", "no", "abcdef12", "0xAB", "", "-1"])),
))
def test_normalize_fast_equals_exact_on_any_params(normalizers, params):
    fast, exact = normalizers
    d = wire.Decoded("x", {"id": "530", **params})
    assert ENC.encode(fast.normalize(d, NOW)) == ENC.encode(exact.normalize(d, NOW))
