"""Where msgpack objects end, without decoding them: shared by the forward server and the
msgpack stream.

msgspec has no streaming unpacker, so a small length-walker marks where an object ends. It
is resumable (no rescanning when an object arrives in pieces) and skips ``str``/``bin``
payloads by their length header, so a large packed frame costs a handful of steps.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import msgspec

MAX_DEPTH = 64


class FrameError(ValueError):
    """The peer sent bytes that are not a valid forward frame: the connection must be closed."""


class OverBudget(FrameError):
    """A frame would decode into more objects (or events) than its budget allows."""


class Budget:
    """What one frame may decode into, in objects: every array, map, key and value counts one.

    The byte limits do not bound the work: an empty array is one byte and a Python object of
    about 60, so a budget in objects is spent by :func:`walk` before anything is decoded.
    """

    __slots__ = ("limit", "left")

    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit

    def reset(self) -> None:
        self.left = self.limit


def _fixed_sizes() -> tuple[int, ...]:
    """Total size of every msgpack object whose size is known from its first byte (0 if not)."""
    sizes = [0] * 256
    for b in range(0x00, 0x80):  # positive fixint
        sizes[b] = 1
    for b in range(0xE0, 0x100):  # negative fixint
        sizes[b] = 1
    for b in range(0xA0, 0xC0):  # fixstr: header + payload
        sizes[b] = 1 + (b & 0x1F)
    # fmt: off
    for b, size in {
        0xC0: 1, 0xC2: 1, 0xC3: 1,  # nil, false, true
        0xCA: 5, 0xCB: 9,  # float32, float64
        0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,  # uint8..64
        0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9,  # int8..64
        0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18,  # fixext1..16
    }.items():
        sizes[b] = size
    # fmt: on
    return tuple(sizes)


_FIXED = _fixed_sizes()
# fmt: off
# first byte -> (length-field bytes, extra bytes after the length field: the ext type)
_VARIABLE = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),  # bin8/16/32
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),  # str8/16/32
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),  # ext8/16/32
}
# first byte -> (count-field bytes, items per count)
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def walk(
    buf: bytes | bytearray | memoryview, pos: int, stack: list[int], limit: int,
    budget: Budget | None = None,
) -> tuple[int, bool]:
    """Walk msgpack objects from ``pos`` until ``stack`` empties or ``buf`` runs out.

    ``stack`` holds the items still to walk in each open container and is updated in place;
    an empty stack means "one object". Returns ``(next position, object complete)``; the next
    position may lie beyond ``buf`` when a str/bin payload is still to come. Each object
    walked spends one of ``budget``; :class:`OverBudget` is raised when it runs out.
    """
    fixed = _FIXED
    n = len(buf)
    spare = budget.left if budget is not None else sys.maxsize
    while pos < n:
        spare -= 1
        if spare < 0:
            raise OverBudget(f"frame over budget: more than {budget.limit} objects")
        b = buf[pos]
        size = fixed[b]
        if size:
            pos += size
        elif b == 0xD9:  # str8: the usual log line
            if pos + 2 > n:
                break
            pos += 2 + buf[pos + 1]
        elif b == 0xDA:  # str16
            if pos + 3 > n:
                break
            pos += 3 + (buf[pos + 1] << 8 | buf[pos + 2])
        elif 0x80 <= b <= 0x9F:  # fixmap, fixarray
            count = (b & 0x0F) * 2 if b < 0x90 else b & 0x0F
            pos += 1
            if count:
                if len(stack) >= MAX_DEPTH:
                    raise FrameError("msgpack nesting too deep")
                stack.append(count)
                continue
        elif b in _VARIABLE:
            width, extra = _VARIABLE[b]
            if pos + 1 + width > n:
                break
            pos += 1 + width + extra + int.from_bytes(buf[pos + 1 : pos + 1 + width], "big")
            if pos > limit:
                raise FrameError(f"frame larger than {limit} bytes")
        elif b in _CONTAINERS:
            width, per = _CONTAINERS[b]
            if pos + 1 + width > n:
                break
            count = int.from_bytes(buf[pos + 1 : pos + 1 + width], "big") * per
            pos += 1 + width
            if count:
                if len(stack) >= MAX_DEPTH:
                    raise FrameError("msgpack nesting too deep")
                stack.append(count)
                continue
        else:
            raise FrameError(f"invalid msgpack byte 0x{b:02x}")
        # one object is complete: close every container it completes
        while stack:
            left = stack[-1] - 1
            if left:
                stack[-1] = left
                break
            stack.pop()
        if not stack:
            if budget is not None:
                budget.left = spare
            return pos, True
    if budget is not None:
        # the object that ran out of bytes is counted again when its walk resumes
        budget.left = spare + 1 if pos < n else spare
    return pos, False


def iter_ends(buf: bytes | bytearray | memoryview, *, max_object: int = sys.maxsize,
              partial: bool = False) -> Iterator[int]:
    """The end offset of each msgpack object in ``buf``, one after another from its start.

    :param max_object: the most bytes one object may take: a str, bin or ext header that
        says more raises :class:`FrameError` as soon as it is read.
    :param partial: ``buf`` is what has arrived of a stream: the iteration stops before an
        object it does not hold whole (its bytes are the start of the next read). Otherwise
        such an object raises :class:`FrameError`.
    :raises FrameError: a byte that cannot start an object, nesting deeper than
        :data:`MAX_DEPTH`, an object over ``max_object``, or (not ``partial``) a truncation.
    """
    n = len(buf)
    pos = 0
    while pos < n:
        end, done = walk(buf, pos, [], pos + max_object)
        if not done or end > n:
            if partial:
                return
            raise FrameError("truncated msgpack data")
        yield end
        pos = end


def count_objects(buf: bytes | bytearray | memoryview, budget: Budget | None = None) -> int:
    """Count the consecutive msgpack objects filling ``buf``, each spending one of
    ``budget`` (and each item inside it, as :func:`walk` counts); raises :class:`FrameError`
    (:class:`OverBudget` when the budget runs out)."""
    n = len(buf)
    if n == 0:
        return 0
    total = n + 1  # more objects than bytes cannot be: the count never runs out
    stack = [total]
    pos, _ = walk(buf, 0, stack, sys.maxsize, budget)
    if pos != n or len(stack) != 1:
        raise FrameError("truncated msgpack data")
    return total - stack[0]


def array_prefix(count: int) -> bytes:
    """The msgpack array header for ``count`` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def concatenated(encoder: msgspec.msgpack.Encoder, items: list) -> bytes:
    """``items`` encoded back to back, in one call in C: the list less its array header."""
    return encoder.encode(items)[len(array_prefix(len(items))):]
