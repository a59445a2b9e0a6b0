"""A day of tunnel sessions at a site, with its ground truth (``ikefilter generate --sessions``).

Where :mod:`ikefilter.generate` writes lines one by one, this writes coherent tunnel
lifecycles: site-to-site peers whose tunnels come up, rekey (new SPIs each time, the old
ones named in the 616), carry IPsec SAs that rekey on their own lifetime, and go down
(deleted, or the peer dead); road warriors who take an address from a pool, log in, log out
and give the address back; peers that flap, and one that nearly does. And what a day
brings besides: lines lost on the way (an establishment, a delete), an establishment
delivered after the tunnel's first rekey, deletes of SAs from before the day, failed
negotiations of strangers.

The truth says, for every tunnel, what a correct reader of the lines must report: its
start and end, rekeys, IPsec SAs, why it closed (``idle`` when its delete was lost), and
whether its start was seen; and which peers flap. Seeded: the same day every time.
"""

from __future__ import annotations

import heapq
import random
import sys
from collections.abc import Iterator
from datetime import datetime, timezone

import msgspec

from .. import exits
from ..catalog import Catalog, CatalogError, Message
from ..catalog import load as load_catalog
from . import write

DAY = 86400
_LOCAL = ("203.0.113.1", "203.0.113.2")
_LOCAL_ID = "vpn.example.com"
_ALGS = ("AES-256-GCM PRF-SHA384 DH20", "AES-128-GCM PRF-SHA256 DH19", "AES-256 SHA256 DH14")
_SHAPES = ("bracketed", "bracketed", "bracketed", "rfc5424", "json-log", "split")
_HOST = "fw-hq-01"


class Peer(msgspec.Struct, frozen=True):
    local_ip: str
    remote_ip: str
    remote_id: str


class TruthTunnel(msgspec.Struct, kw_only=True):
    """What a correct reader of the day's lines reports of one tunnel."""

    first_spis: str           # local:remote IKE SPIs the tunnel came up with
    last_spis: str            # the pair it ended with
    peer: Peer
    kind: str                 # site, road-warrior, flapping, near-miss
    start: int                # epoch seconds: its first line that names it
    end: int | None           # its last line (its delete, or before a lost delete); None: open
    rekeys: int
    ipsec_sas: int
    ipsec_rekeys: int
    close_reason: str         # deleted, peer-dead, idle, open
    partial: bool             # its establishment was lost
    late_start: bool = False  # its establishment came after its first rekey
    pool_address: str | None = None
    user: str | None = None


class Truth(msgspec.Struct, kw_only=True):
    """The ground truth of a generated day, for the settings it was made for."""

    seed: int
    start: str
    lines: int
    flap_count: int
    flap_window: int
    tunnels: list[TruthTunnel]
    flapping: list[Peer]
    near_miss: list[Peer]
    stray_deletes: int
    lost_lines: int


class _Line(msgspec.Struct, array_like=True, order=True):
    arrival: int              # when the collector gets it (seconds); a late line arrives late
    seq: int
    stamp: int                # the time the line says
    msg_id: int
    values: dict[str, str]


class _Day:
    def __init__(self, catalog: Catalog, seed: int, t0: int, flap_count: int, flap_window: int):
        self.r = random.Random(seed)
        self.by_id: dict[int, Message] = catalog.by_id()
        self.t0 = t0
        self.end = t0 + DAY
        self.flap_count = flap_count
        self.flap_window = flap_window
        self.seq = 0
        self.truth: list[TruthTunnel] = []
        self.lost = 0
        self.strays = 0

    def spi(self, nbytes: int) -> str:
        return f"{self.r.getrandbits(8 * nbytes):0{2 * nbytes}x}"

    def line(self, out: list[_Line], stamp: int, msg_id: int, values: dict[str, str],
             arrival: int | None = None) -> None:
        self.seq += 1
        out.append(_Line(stamp if arrival is None else arrival, self.seq, stamp, msg_id, values))

    # -- one tunnel ---------------------------------------------------------------------------

    def tunnel(self, peer: Peer, kind: str, up: int, down: int, reason: str, *,
               rekey_time: int, lifetime: int, children: int = 1, user: str | None = None,
               pool: str | None = None, remote_port: str = "4500", damage: bool = True,
               ) -> list[_Line]:
        """The lines of one tunnel from ``up`` to ``down`` (``down`` past the day: open)."""
        r = self.r
        out: list[_Line] = []
        ike = [self.spi(8), self.spi(8)]
        first = ":".join(ike)
        initiator = r.random() < 0.3
        ike_common = {
            "localip": peer.local_ip, "localport": "4500", "remoteip": peer.remote_ip,
            "remoteport": remote_port, "localid": _LOCAL_ID, "remoteid": peer.remote_id,
            "initiator": "true" if initiator else "false", "algorithms": r.choice(_ALGS),
            "rekeytime": str(rekey_time), "reauthtime": "0", "ikeversion": "2",
            "iface": f"ipsec_{kind.replace('-', '_')}", "recviface": "wan",
        }
        ipsec_common = {"localip": peer.local_ip, "remoteip": peer.remote_ip, "proto": "ESP",
                        "localts": "10.0.0.0/16", "lifetime": str(lifetime),
                        "algorithms": "AES-256-GCM", "initiator": ike_common["initiator"],
                        "iface": ike_common["iface"], "recviface": "wan"}
        closes = down < self.end
        last = down if closes else self.end
        if pool is not None:
            self.line(out, up - 2, 1693, {"ip": pool, "iface": ike_common["iface"]})
            self.line(out, up - 1, 1694, {"ip": pool, "iface": ike_common["iface"]})
        est = {**ike_common, "localikespi": ike[0], "remoteikespi": ike[1]}
        self.line(out, up, 530, est)
        establish = out[-1]
        sas: list[list[str]] = []
        ipsec_sas = ipsec_rekeys = rekeys = 0
        remote_ts = f"{pool}/32" if pool else f"10.{r.randrange(1, 250)}.{r.randrange(256)}.0/24"
        for k in range(children):
            sa = [self.spi(4), self.spi(4)]
            sas.append(sa)
            ipsec_sas += 1
            self.line(out, up + 1 + k, 155, {
                **ipsec_common, "inboundspi": sa[0], "outboundspi": sa[1],
                "remotets": remote_ts, "localikespi": ike[0], "remoteikespi": ike[1]})
        # Rekeys: the IKE SA every rekey_time, each IPsec SA every lifetime, a little early.
        events: list[tuple[int, int, int]] = []  # (time, what, which); what 0: IKE, 1: IPsec
        t = up
        while True:
            t += rekey_time - r.randrange(0, min(300, rekey_time // 10) + 1)
            if t >= last - 5:
                break
            events.append((t, 0, 0))
        for k in range(children):
            t = up + 1 + k
            while True:
                t += lifetime - r.randrange(0, min(120, lifetime // 10) + 1)
                if t >= last - 5:
                    break
                events.append((t, 1, k))
        events.sort()
        first_rekey = None
        for t, what, k in events:
            if what == 0:
                old = list(ike)
                ike = [self.spi(8), self.spi(8)]
                rekeys += 1
                if r.random() < 0.05:
                    self.line(out, t - 30, 161, {**ike_common, "localikespi": old[0],
                                                 "remoteikespi": old[1],
                                                 "reason": "Timeout"})
                self.line(out, t, 616, {**ike_common, "localikespi": ike[0],
                                        "remoteikespi": ike[1], "oldlocalikespi": old[0],
                                        "oldremoteikespi": old[1]})
                if first_rekey is None:
                    first_rekey = out[-1]
            else:
                old = sas[k]
                sas[k] = [self.spi(4), self.spi(4)]
                ipsec_rekeys += 1
                self.line(out, t, 628, {
                    **ipsec_common, "inboundspi": sas[k][0], "outboundspi": sas[k][1],
                    "oldinboundspi": old[0], "oldoutboundspi": old[1], "remotets": remote_ts,
                    "localikespi": ike[0], "remoteikespi": ike[1]})
        if closes:
            if user is not None:
                self.line(out, down - 2, 737, {"userid": user, "localikespi": ike[0],
                                               "remoteikespi": ike[1]})
            if reason == "deleted":
                for sa in sas:
                    self.line(out, down - 1, 183, {
                        **ipsec_common, "inboundspi": sa[0], "outboundspi": sa[1],
                        "remotets": remote_ts, "localikespi": ike[0],
                        "remoteikespi": ike[1]})
            code = 590 if reason == "deleted" else 803
            values = {**ike_common, "localikespi": ike[0], "remoteikespi": ike[1]}
            if code == 803:
                values = {k: v for k, v in values.items() if k in self.by_id[803].parameters}
            self.line(out, down, code, values)
            if pool is not None:
                self.line(out, down + 1, 1691, {"ip": pool, "iface": ike_common["iface"]})
        # What the day does to the lines.
        partial = late = False
        damage_kind = r.random() if damage else 1.0
        if damage_kind < 0.03:
            out.remove(establish)  # the establishment is lost
            self.lost += 1
            partial = True
        elif damage_kind < 0.06 and first_rekey is not None:
            establish.arrival = first_rekey.arrival + 1  # delivered after the first rekey
            late = True
        elif damage_kind < 0.09 and closes and reason == "deleted" and down < self.end - 4 * \
                rekey_time - 3600:
            out.remove(next(x for x in out if x.msg_id == 590))  # the delete is lost
            self.lost += 1
            reason = "idle"
        joined = [x for x in out if x.msg_id not in (1693, 1694)
                  and not (x.msg_id == 1691 and reason != "idle")]
        self.truth.append(TruthTunnel(
            first_spis=first, last_spis=":".join(ike), peer=peer, kind=kind,
            start=min(x.stamp for x in joined), rekeys=rekeys,
            end=max(x.stamp for x in joined) if closes else None,
            ipsec_sas=ipsec_sas, ipsec_rekeys=ipsec_rekeys,
            close_reason=reason if closes else "open", partial=partial, late_start=late,
            pool_address=pool, user=user if closes else None))
        return out

    # -- peers ------------------------------------------------------------------------------

    def v4(self) -> str:
        r = self.r
        return f"{r.choice((81, 92, 185, 62, 88))}.{r.randrange(256)}.{r.randrange(256)}." \
               f"{r.randrange(1, 255)}"

    def site(self, n: int) -> list[_Line]:
        """A site-to-site peer: tunnels back to back all day, at least 6 min apart."""
        r = self.r
        peer = Peer(r.choice(_LOCAL), self.v4(), f"gw-{n:05d}.example.net")
        rekey_time = r.choice((3600, 3600, 7200, 28800))
        lifetime = r.choice((1800, 3600))
        out: list[_Line] = []
        t = self.t0 + r.randrange(0, 6 * 3600)
        while t < self.end:
            life = r.randrange(2 * 3600, 16 * 3600)
            reason = "peer-dead" if r.random() < 0.2 else "deleted"
            out += self.tunnel(peer, "site", t, t + life, reason, rekey_time=rekey_time,
                               lifetime=lifetime, children=r.choice((1, 1, 2)))
            t += life + r.randrange(360, 3600)
        if r.random() < 0.1:
            # A delete of an SA from before the day (or another process's): never seen up.
            self.strays += 1
            self.line(out, self.t0 + r.randrange(60, DAY - 60), 590, {
                "localip": peer.local_ip, "localport": "4500", "remoteip": peer.remote_ip,
                "remoteport": "4500", "localid": _LOCAL_ID, "remoteid": peer.remote_id,
                "localikespi": self.spi(8), "remoteikespi": self.spi(8), "initiator": "false",
                "ikeversion": "2"})
        return out

    def road_warrior(self, n: int) -> list[_Line]:
        """A user on the road: a few sessions a day from changing addresses, a pool address."""
        r = self.r
        user = f"user{n:05d}@example.com"
        out: list[_Line] = []
        t = self.t0 + r.randrange(6 * 3600, 10 * 3600)
        for _ in range(r.choice((1, 1, 2, 3))):
            life = r.randrange(600, 4 * 3600)
            if t + life + 10 >= self.end:
                break
            peer = Peer(_LOCAL[0], self.v4(), user)
            pool = f"10.200.{r.randrange(256)}.{r.randrange(1, 255)}"
            out += self.tunnel(peer, "road-warrior", t, t + life, "deleted", rekey_time=3600,
                               lifetime=1800, user=user, pool=pool)
            t += life + r.randrange(3600, 3 * 3600)
        return out

    def flapping(self, n: int) -> tuple[Peer, list[_Line]]:
        """A peer whose tunnels go down again and again for a while, then hold."""
        r = self.r
        peer = Peer(_LOCAL[0], self.v4(), f"flaky-{n:03d}.example.net")
        out: list[_Line] = []
        t = self.t0 + r.randrange(3600, DAY - 6 * 3600)
        for _ in range(self.flap_count + 1):
            life = r.randrange(40, 100)
            out += self.tunnel(peer, "flapping", t, t + life, r.choice(("deleted", "peer-dead")),
                               rekey_time=3600, lifetime=1800, damage=False)
            t += life + r.randrange(15, 40)
        out += self.tunnel(peer, "flapping", t + 600, self.end + 1, "deleted", rekey_time=3600,
                           lifetime=1800, damage=False)
        return peer, out

    def near_miss(self, n: int) -> tuple[Peer, list[_Line]]:
        """A peer whose downs come one fewer than flapping in any window."""
        peer = Peer(_LOCAL[1], self.v4(), f"steady-{n:03d}.example.net")
        out: list[_Line] = []
        r = self.r
        t = self.t0 + r.randrange(3600, DAY - 6 * 3600)
        gap = self.flap_window // (self.flap_count - 1) + 30  # downs this far apart
        for _ in range(self.flap_count + 1):
            out += self.tunnel(peer, "near-miss", t, t + gap - 20, "deleted", rekey_time=3600,
                               lifetime=1800, damage=False)
            t += gap
        return peer, out

    def stranger(self) -> list[_Line]:
        """A negotiation that fails: no tunnel, nothing to join."""
        r = self.r
        out: list[_Line] = []
        self.line(out, self.t0 + r.randrange(DAY), 642, {
            "localip": _LOCAL[0], "localport": "500", "remoteip": self.v4(), "remoteport": "500",
            "localid": _LOCAL_ID, "remoteid": "unknown.example.org",
            "localikespi": self.spi(8), "remoteikespi": "0000000000000000",
            "initiator": "false", "ikeversion": "2", "reason": "No proposal chosen"})
        return out


def day(catalog: Catalog, peers: int = 100, seed: int = 1, start: datetime | None = None,
        flap_count: int = 3, flap_window: int = 600, road_warriors: float = 0.6,
        ) -> tuple[Iterator[str], Truth]:
    """A day of ``peers`` peers' tunnels as lines (in the order a collector gets them), and
    its truth for flapping defined as ``flap_count`` downs within ``flap_window`` seconds.

    Most peers are sites and road warriors; about one in fifty flaps (at least one), as many
    nearly do; ``road_warriors`` is the share of the rest that are users on the road (the
    others are sites). The lines are made up front (the truth needs all of them); they are rendered
    as they are read.
    """
    if peers < 2:
        raise ValueError("a day of sessions needs at least 2 peers")
    t0 = int((start or datetime(2026, 11, 26, tzinfo=timezone.utc)).timestamp())
    d = _Day(catalog, seed, t0, flap_count, flap_window)
    flaky = max(1, peers // 50)
    streams: list[list[_Line]] = []
    flapping, near = [], []
    for n in range(flaky):
        peer, out = d.flapping(n)
        flapping.append(peer)
        streams.append(out)
        peer, out = d.near_miss(n)
        near.append(peer)
        streams.append(out)
    for n in range(peers - 2 * flaky):
        streams.append(d.road_warrior(n) if d.r.random() < road_warriors else d.site(n))
        if d.r.random() < 0.1:
            streams.append(d.stranger())
    for out in streams:
        out.sort()
    merged = list(heapq.merge(*streams))
    truth = Truth(seed=seed, start=_iso(t0), lines=len(merged), flap_count=flap_count,
                  flap_window=flap_window, tunnels=d.truth, flapping=flapping, near_miss=near,
                  stray_deletes=d.strays, lost_lines=d.lost)
    return _render_all(d, merged), truth


def _render_all(d: _Day, merged: list[_Line]) -> Iterator[str]:
    encode = msgspec.json.Encoder().encode
    r = random.Random(d.r.random())
    for item in merged:
        yield _render(d.by_id[item.msg_id], item.stamp, item.values, r.choice(_SHAPES), encode)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _render(msg: Message, stamp: int, values: dict[str, str], shape: str, encode) -> str:
    pairs = [("prio", str(7 - msg.severity_code)), ("id", str(msg.id)), ("rev", "1"),
             ("event", msg.ecs.action.replace("-", "_"))]
    pairs += [(name, values[name]) for name in msg.parameters if name in values]
    when = datetime.fromtimestamp(stamp, timezone.utc)
    if shape == "split":
        record = {"@timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "host": _HOST}
        record.update(pairs)
        return encode(record).decode()
    body = " ".join(f'{k}="{v}"' if " " in v or "=" in v else f"{k}={v}" for k, v in pairs)
    cats = ",".join(msg.categories)
    pri = 16 * 8 + msg.severity_code
    if shape == "rfc5424":
        return f"<{pri}>1 {when:%Y-%m-%dT%H:%M:%S}.000Z {_HOST} EFW - - - {cats}: {body}"
    line = f"<{pri}>[{when:%Y-%m-%d %H:%M:%S}] EFW: {cats}: {body}"
    return encode({"log": line}).decode() if shape == "json-log" else line


def command(args) -> int:
    """``ikefilter generate --sessions PEERS [--truth FILE]``: the day's lines on stdout."""
    with exits.reading(CatalogError):
        cat = load_catalog(args.catalog)
    try:
        produced, truth = day(cat, args.sessions, args.seed)
    except ValueError as exc:
        raise exits.Failure(exits.USAGE, str(exc)) from None
    if args.truth:
        with exits.writing(), open(args.truth, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(truth), indent=1) + b"\n")
    write(produced, sys.stdout)
    return 0
