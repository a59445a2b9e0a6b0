"""Frame boundaries in a forward TCP byte stream (:class:`FrameSplitter`)."""

from __future__ import annotations

from ..msgpack_framing import Budget, FrameError, walk

DEFAULT_MAX_FRAME = 16 * 1024 * 1024

_FRAME_STARTS = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD, 0xC0}
_ANY_START = frozenset(range(256)) - {0xC1}


class FrameSplitter:
    """Cut a forward byte stream into complete msgpack frames.

    :param max_frame: largest frame accepted, in bytes; a larger one raises :class:`FrameError`
        as soon as its size is known, before it is buffered.
    :param replies: accept any msgpack object, as a client reading acks (maps) does; by default
        a frame must be an array or nil, so that text or other garbage fails at once.
    :param max_objects: most objects a frame may hold (see :class:`Budget`); more raises
        :class:`~ikefilter.adapters.msgpack_framing.OverBudget` as the walk reaches them.

    ``feed(data)`` returns the frames completed by ``data`` (``bytes``, in order). After a
    :class:`FrameError` the splitter is unusable, as is the connection it reads.
    """

    __slots__ = ("_buf", "_pos", "_stack", "_end", "_parts", "_parts_len", "_starts", "max_frame",
                 "_budget")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, replies: bool = False,
                 max_objects: int | None = None) -> None:
        self.max_frame = max_frame
        self._budget = Budget(max_objects) if max_objects is not None else None
        self._starts = _ANY_START if replies else _FRAME_STARTS
        self._buf = bytearray()
        self._pos = 0  # next byte the walker looks at, relative to the current frame's start
        self._stack: list[int] = []  # items still to walk in each open container
        self._end = -1  # end of the current frame once walked (the buffer may still lack bytes)
        self._parts: list[bytes] = []  # pieces of a frame whose end is known, not yet joined
        self._parts_len = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) + self._parts_len

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return every frame now complete."""
        frames: list[bytes] = []
        buf = self._buf
        end = self._end
        if end > len(buf) + len(data) + self._parts_len:
            # the end of a large frame is known: keep the pieces and join them once it is
            # complete, since growing a bytearray piece by piece copies the frame many times
            self._parts.append(data)
            self._parts_len += len(data)
            return frames
        if self._parts_len:
            self._parts.append(data)
            joined = b"".join((buf, *self._parts))
            self._parts.clear()
            self._parts_len = 0
            self._pos, self._end = 0, -1
            if len(joined) == end:
                buf.clear()
                frames.append(joined)
                return frames
            with memoryview(joined) as view:
                frames.append(bytes(view[:end]))
                self._buf = buf = bytearray(view[end:])
        else:
            buf += data
        while buf:
            if self._end < 0:
                if self._pos == 0:
                    if buf[0] not in self._starts:
                        raise FrameError(f"not a forward frame (first byte 0x{buf[0]:02x})")
                    if self._budget is not None:
                        self._budget.reset()
                self._pos, done = walk(buf, self._pos, self._stack, self.max_frame,
                                       self._budget)
                if done:
                    if self._pos > self.max_frame:
                        raise FrameError(f"frame larger than {self.max_frame} bytes")
                    self._end = self._pos
            end = self._end
            if end < 0 or end > len(buf):
                if self._pos > self.max_frame:
                    raise FrameError(f"frame larger than {self.max_frame} bytes")
                break
            if end == len(buf):
                frames.append(bytes(buf))
                buf.clear()
            else:
                with memoryview(buf) as view:
                    frames.append(bytes(view[:end]))
                del buf[:end]
            self._pos, self._end = 0, -1
        return frames
