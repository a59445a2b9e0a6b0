"""Every builder of a catalog in one table, found by the ``id`` text a line carries; each is
compiled the first time its message appears (:mod:`ikefilter.builders` writes them)."""

from __future__ import annotations

from .builders import Builder, compile_builder, generic, message_structs
from .catalog import Catalog, Message
from .shaping import DEFAULT, Shaping


class Builders:
    """Every builder of a catalog, found by the ``id`` text of a line.

    :param ignore: keys the builders pass over, neither mapped nor kept (a record's own
        keys, where a shipper split the pairs into fields beside them).
    """

    _CACHED_MAX = 4096

    def __init__(self, catalog: Catalog, dialect: str = "clavister",
                 keep_original: bool = True, ignore: frozenset[str] = frozenset(),
                 shaping: Shaping = DEFAULT):
        self.dialect, self.keep_original, self.ignore = dialect, keep_original, ignore
        self.shaping = shaping
        self.messages = catalog.messages
        self.known: dict[str, Builder] = {
            str(msg.id): self._on_first_use(msg) for msg in catalog.messages}
        #: ``id`` text as sent -> its builder; a dictionary lookup for the usual forms
        self.by_text: dict[str | None, Builder] = dict(self.known)
        self.by_text.update({f"{int(code):08d}": b for code, b in self.known.items()})
        self.by_text[None] = generic(None, None, dialect, keep_original, ignore, shaping)
        self._preset = len(self.by_text)

    def structs(self) -> list[type]:
        """Every message's Structs (:func:`message_structs`)."""
        return [struct for msg in self.messages
                for struct in message_structs(msg, self.dialect, self.keep_original,
                                              self.shaping)]

    def _on_first_use(self, msg: Message) -> Builder:
        """A stand-in that compiles ``msg``'s builder when a line first needs it (a stream
        seldom carries every message), then puts it in its own place."""

        def build(*args):
            real = compile_builder(msg, self.dialect, self.keep_original, self.ignore,
                                   self.shaping)
            self.known[str(msg.id)] = real
            for key, value in self.by_text.items():
                if value is build:
                    self.by_text[key] = real
            return real(*args)

        return build

    def __call__(self, raw_id: str | None) -> Builder:
        """The builder for ``raw_id`` as sent (None: the line has no ``id``)."""
        build = self.by_text.get(raw_id)
        if build is None:
            build = self._resolve(raw_id)  # type: ignore[arg-type]
        return build

    def _resolve(self, raw_id: str) -> Builder:
        text = raw_id.strip()
        if text.isascii() and text.isdigit():
            code = str(int(text))
            build = self.known.get(code) or generic(code, raw_id, self.dialect,
                                                     self.keep_original, self.ignore,
                                                     self.shaping)
        else:
            build = generic(None, raw_id, self.dialect, self.keep_original, self.ignore,
                             self.shaping)
        if len(raw_id) <= 16:
            if len(self.by_text) >= self._preset + self._CACHED_MAX:
                for key in list(self.by_text)[self._preset:]:
                    del self.by_text[key]
            self.by_text[raw_id] = build
        return build
