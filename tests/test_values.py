"""The value grammar, and lines drawn from it: every form it accepts is read by its rule and
taken by the batch lane, with the bytes the per-line path writes."""

from __future__ import annotations

import ipaddress
import random

import msgspec
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import ikefilter.ecs
from ikefilter import catalog, ecs, values
from ikefilter.pipeline import Pipeline

NOW = "2026-11-26T12:00:00.000Z"
CATALOG = catalog.load()
HEADER = "<134>[2026-11-26 10:00:00] EFW: IKE: "


# -- each rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    ("abcdef0123456789", "abcdef0123456789"), ("ABCDEF", "abcdef"), ("0xAB", "ab"),
    ("0XaB", "ab"), (" 0xab ", "ab"), ("0x", None), ("xyz", None), ("ab cd", None),
])
def test_spi(raw, value):
    got = values.spi(raw)
    assert got == value if value is not None else type(got) is values.Invalid


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "yes", "Yes", "on", "ON", "1", " true"])
def test_true(raw):
    assert values.boolean(raw) is True


@pytest.mark.parametrize("raw", ["false", "FALSE", "False", "no", "NO", "off", "Off", "0"])
def test_false(raw):
    assert values.boolean(raw) is False


@pytest.mark.parametrize("raw", ["null", "NULL", "Null"])
def test_null_is_no_value(raw):
    assert values.boolean(raw) is None
    assert values.port(raw) is None


@pytest.mark.parametrize("raw", ["maybe", "2", "t", "y"])
def test_not_a_boolean(raw):
    assert values.boolean(raw).why == "not a boolean"


@pytest.mark.parametrize("raw, value", [
    ("500", 500), ("5e2", 500), ("500.0", 500), (" 500 ", 500), ("0", 0), ("-0", 0),
    ("65535", 65535),
])
def test_port(raw, value):
    assert values.port(raw) == value


@pytest.mark.parametrize("raw, why", [
    ("0500", "not an integer"), ("+5", "not an integer"), ("5.5", "not an integer"),
    ("1_0", "not an integer"), ("\u0661", "not an integer"), ("65536", "out of range 0-65535"),
    ("-1", "out of range 0-65535"),
])
def test_not_a_port(raw, why):
    assert values.port(raw).why == why


@pytest.mark.parametrize("raw, value", [
    ("1.2.3.4", "1.2.3.4"), ("2001:DB8::1", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"),
    ("::ffff:1.2.3.4", "::ffff:102:304"), (" 1.2.3.4", "1.2.3.4"),
])
def test_ip(raw, value):
    assert values.ip(raw) == value


@pytest.mark.parametrize("raw", ["01.2.3.4", "1.2.3", "fe80::1%eth0", "x" * 100, "1.2.3.4.5"])
def test_not_an_ip(raw):
    assert values.ip(raw).why == "not an IP address"


@settings(max_examples=examples(2000), deadline=None)
@given(st.ip_addresses(v=6), st.sampled_from(["short", "exploded", "upper", "bracketed"]))
def test_ipv6_written_as_ipaddress_writes_it(address, form):
    text = {"short": str(address), "exploded": address.exploded,
            "upper": str(address).upper(), "bracketed": f"[{address}]"}[form]
    assert values.ip(text) == str(ipaddress.ip_address(text.strip("[]")))


def test_caches_keep_values_and_misfits_and_stay_bounded():
    cache = values.Cache(values.port)
    assert type(cache.read("x")) is values.Invalid and type(cache["x"]) is values.Invalid
    assert cache.read("null") is None and "null" not in cache
    assert cache.read("500") == 500 and cache["500"] == 500
    cache.read("1" * 200)
    assert "1" * 200 not in cache
    for n in range(values.Cache.MAX + 10):
        cache.read(str(n % 65536))
    assert len(cache) <= values.Cache.MAX


def test_every_mapped_parameter_has_a_rule():
    assert set(values.KINDS.values()) <= set(values.RULES)


# -- lines drawn from the grammar ------------------------------------------------------------


def _case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True))


@st.composite
def _raw(draw, kind: str) -> str:
    """A value as a site may send it, for ``kind``."""
    if kind == "spi":
        text = draw(st.binary(min_size=1, max_size=8)).hex()
        return draw(st.sampled_from(["", "0x", "0X"])) + _case(draw, text)
    if kind == "bool":
        return _case(draw, draw(st.sampled_from(sorted(values._BOOLEANS))))
    if kind == "ip":
        address = draw(st.ip_addresses())
        text = str(address)
        return _case(draw, text) if isinstance(address, ipaddress.IPv6Address) else text
    if kind in ("port", "count", "prio"):
        hi = {"port": 65535, "count": 2**40, "prio": 7}[kind]
        return str(draw(st.integers(0, hi)))
    return draw(st.sampled_from(["wan", "ESP", "AES-256 SHA256 DH14", "CN=a, O=b", "x=y",
                                 "", "No proposal chosen", "ipsec_tun1", "10.0.0.0/24"]))


def _render(draw, raw: str) -> str:
    needs = not raw or " " in raw or "=" in raw
    return f'"{raw}"' if needs or draw(st.booleans()) else raw


@st.composite
def lines(draw) -> tuple[str, dict[str, tuple[str, str]]]:
    """A line of a catalogued message in any of the accepted forms, and its typed values
    (name -> kind, raw)."""
    msg = draw(st.sampled_from(CATALOG.messages))
    names = [n for n in msg.parameters if n in values.KINDS]
    chosen = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    typed = {name: (values.KINDS[name], draw(_raw(values.KINDS[name]))) for name in chosen}
    ident = draw(st.sampled_from([str(msg.id), f"{msg.id:08d}", f"{msg.id:05d}"]))
    pairs = [("prio", str(7 - msg.severity_code)), ("id", ident)]
    pairs += [(name, _render(draw, raw)) for name, (_, raw) in typed.items()]
    pairs += [(name, _render(draw, draw(_raw("text"))))
              for name in draw(st.lists(st.sampled_from(["natt", "vendor.id", "x-tra"]),
                                        unique=True, max_size=2))]
    random.Random(draw(st.integers(0, 1000))).shuffle(pairs)
    seps = [draw(st.sampled_from([" ", " ", "  "])) for _ in pairs]
    body = "".join(f"{k}={v}{sep}" for (k, v), sep in zip(pairs, seps, strict=True))
    body = body.rstrip(" ") + draw(st.sampled_from(["", " ", "  "]))
    return HEADER + body, typed


_NOWHERE = object()
_FAST, _EXACT = Pipeline(CATALOG), Pipeline(CATALOG, fast=False)
_ENCODE = msgspec.json.Encoder().encode


def _value_of(event, name: str):
    """Where the builder puts a parameter's typed value (None: it has no single place)."""
    clav = event.clavister
    spots = {
        "localikespi": (clav.ike, "local_spi"), "remoteikespi": (clav.ike, "remote_spi"),
        "oldlocalikespi": (clav.ike, "old_local_spi"),
        "oldremoteikespi": (clav.ike, "old_remote_spi"), "initiator": (clav.ike, "initiator"),
        "inboundspi": (clav.ipsec, "inbound_spi"), "outboundspi": (clav.ipsec, "outbound_spi"),
        "oldinboundspi": (clav.ipsec, "old_inbound_spi"),
        "oldoutboundspi": (clav.ipsec, "old_outbound_spi"), "lifetime": (clav.ipsec, "lifetime"),
        "rekeytime": (clav.ike, "rekey_time"), "reauthtime": (clav.ike, "reauth_time"),
        "ikeversion": (clav.ike, "version"), "count": (clav.ip_pool, "count"),
        "ip": (clav.ip_pool, "address"), "prio": (clav, "prio"),
    }
    where = spots.get(name)
    if where is None:
        return _NOWHERE
    holder, attr = where
    return getattr(holder, attr, None) if holder is not None else None


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(lines(), min_size=1, max_size=12))
def test_grammar_lines_are_taken_and_read_by_their_rules(batch):
    texts = [text for text, _ in batch]
    events = _FAST.lane.lines(texts, NOW)
    assert None not in events, [t for t, e in zip(texts, events, strict=True) if e is None]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ikefilter.ecs, "now", lambda: NOW)
        fast, exact = _FAST.process_lines(texts), _EXACT.process_lines(texts)
    assert [_ENCODE(e) for e in fast] == [_ENCODE(e) for e in exact]
    for event, (_, typed) in zip(events, batch, strict=True):
        assert ecs.TAG_INVALID_VALUE not in event.tags
        for name, (kind, raw) in typed.items():
            got = _value_of(event, name)
            if got is not _NOWHERE:
                assert got == (values.RULES[kind](raw) if raw else None), (name, raw)


def test_a_text_that_is_no_ip_is_read_once_and_still_tagged_every_time() -> None:
    from ikefilter import values
    from ikefilter.pipeline import Pipeline

    line = "[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=fw-gw-{n}"
    pipeline = Pipeline()
    for n in range(3):  # each text twice: read, then from the cache
        for _ in range(2):
            [event] = pipeline.process_lines([line.format(n=n)])
            assert "ikefilter_invalid_value" in event.tags
            assert event.clavister.extra == {"localip": f"fw-gw-{n}"}
            assert event.source is None and event.destination is None
        assert type(values.CACHES["ip"][f"fw-gw-{n}"]) is values.Invalid
        assert values.valid_ip(f"fw-gw-{n}") is None
