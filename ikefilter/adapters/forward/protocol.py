"""Fluent Forward protocol v1, in one import: frame boundaries, frame decoding, entries and
acks, and the shared-key handshake.

Everything here is synchronous and free of I/O so it can be tested byte by byte. The parts
live in :mod:`.framing` (:class:`FrameSplitter`), :mod:`.frames` (:func:`decode_frame`),
:mod:`.lenient` (strings that are not UTF-8), :mod:`.entries` (event times, packed entries,
acks) and :mod:`.handshake`; the msgpack length-walker they share with the msgpack stream is
:mod:`ikefilter.adapters.msgpack_framing`.
"""

from ..msgpack_framing import FrameError, array_prefix, count_objects, walk
from .entries import (
    DEFAULT_UPSTREAM_MAX_FRAME,
    EVENT_TIME_CODE,
    decode_ack,
    encode_ack,
    encode_packed_forward,
    event_time,
    event_time_iso,
    event_time_ns,
    pack_entries,
    pack_payloads,
)
from .frames import DEFAULT_MAX_DECOMPRESSED, Frame, decode_frame
from .framing import DEFAULT_MAX_FRAME, FrameSplitter
from .handshake import (
    HandshakeError,
    Ping,
    encode_helo,
    encode_ping,
    encode_pong,
    handshake_digest,
    parse_helo,
    parse_ping,
    parse_pong,
)
from .lenient import decode_message

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_UPSTREAM_MAX_FRAME",
    "EVENT_TIME_CODE",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "HandshakeError",
    "Ping",
    "array_prefix",
    "count_objects",
    "decode_ack",
    "decode_frame",
    "decode_message",
    "encode_ack",
    "encode_helo",
    "encode_packed_forward",
    "encode_ping",
    "encode_pong",
    "event_time",
    "event_time_iso",
    "event_time_ns",
    "handshake_digest",
    "pack_entries",
    "pack_payloads",
    "parse_helo",
    "parse_ping",
    "parse_pong",
    "walk",
]
