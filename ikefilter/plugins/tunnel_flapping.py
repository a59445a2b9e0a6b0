"""Flapping peers: a peer whose tunnels go down ``count`` times within ``window`` is
flapping, and is alerted once per window."""

from __future__ import annotations

from collections import OrderedDict

from .tunnel_model import Peer


class Flaps:
    """The recent downs of each peer, least recently down first, at most ``max_peers``.

    :param count: downs within ``window`` that make a peer flapping.
    :param window: nanoseconds.
    """

    def __init__(self, count: int, window: int, max_peers: int):
        self.count, self.window, self.max_peers = count, window, max_peers
        self.peers: OrderedDict[tuple, Peer] = OrderedDict()

    def down(self, peer: tuple[str, str, str], t: int) -> list[int] | None:
        """Count a down of ``peer`` at ``t``; its downs in the window when an alert is due."""
        if not peer[1]:
            return None
        window = self.window
        peers = self.peers
        # Least recently down first: a peer whose last down left the window is forgotten.
        while peers:
            first = next(iter(peers.values()))
            if first.downs[-1] > t - window:
                break
            peers.popitem(last=False)
        p = peers.get(peer)
        if p is None:
            p = peers[peer] = Peer()
            if len(peers) > self.max_peers:
                peers.popitem(last=False)
        else:
            peers.move_to_end(peer)
        downs = [d for d in p.downs if d > t - window]
        downs.append(t)
        p.downs = downs[-self.count:]
        if len(p.downs) < self.count:
            return None
        if p.alerted is None or t - p.alerted >= window:
            p.alerted = t
            return p.downs
        return None

    def flapping(self, peer: tuple[str, str, str], t: int) -> bool:
        """Whether an event of ``peer`` at ``t`` falls in its flapping time: within the
        window after the down that made it flapping (or a later one)."""
        p = self.peers.get(peer)
        return p is not None and len(p.downs) >= self.count and p.downs[-1] + self.window >= t
