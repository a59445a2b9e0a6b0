"""Fluent Forward protocol v1 adapter: a server in front of a record processor, and an
at-least-once client to the next forward hop.

The package depends on nothing else in ikefilter: the server only calls
``processor.process_records(records: list[dict], times) -> list[object | None]`` once per batch.
"""

from .protocol import Frame, FrameError, FrameSplitter, decode_frame, event_time
from .server import ForwardServer, ForwardStats, Processor, parse_address, run, serve
from .upstream import UpstreamClient

__all__ = [
    "ForwardServer",
    "ForwardStats",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "Processor",
    "UpstreamClient",
    "decode_frame",
    "event_time",
    "parse_address",
    "run",
    "serve",
]
