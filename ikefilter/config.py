"""The site config: one TOML file, decoded into Structs that reject unknown keys.

A typo or a wrong type is a start-up error that names the file, the line when it can be
found, and the key, never a silent default. Secrets are not
config values: the redaction key is read from the environment variable or file named here.
``docs/config.md`` describes every field.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated, Any, Literal

import msgspec

from ._toml import TOMLDecodeError, load_toml
from .choices import allowed
from .ocsf import Schema
from .record import DEFAULT_SOURCE_KEYS
from .records import DEFAULT_MAX_DEPTH, DEFAULT_MAX_LINE
from .severity import code_of
from .shaping import EcsTable, TimeTable

IpMode = Literal["keep", "mask", "hmac", "truncate", "cryptopan"]
IdentityMode = Literal["keep", "mask", "hmac"]
DEFAULT_KEY_ENV = "IKEFILTER_REDACT_KEY"

Prefix4 = Annotated[int, msgspec.Meta(ge=0, le=32)]
Prefix6 = Annotated[int, msgspec.Meta(ge=0, le=128)]
TokenLength = Annotated[int, msgspec.Meta(ge=8, le=64)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class ConfigError(ValueError):
    """The site config cannot be used; the text names the file, line and key."""


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Core(_Table):
    """``[ikefilter]``: what the core pipeline and the plugin host read."""

    plugins: list[NonEmpty] = []
    disable_plugins: list[NonEmpty] = []
    # None: "pass", or "tag" when redaction is on (a pass-through is never redacted)
    non_clavister: Literal["pass", "tag", "drop"] | None = None
    severity_dialect: Literal["clavister", "syslog"] = "clavister"
    source_keys: list[NonEmpty] = msgspec.field(default_factory=lambda: list(DEFAULT_SOURCE_KEYS))
    quarantine: NonEmpty | None = None
    max_line: Annotated[int, msgspec.Meta(ge=256, le=16 * 1024 * 1024)] = DEFAULT_MAX_LINE
    max_depth: Annotated[int, msgspec.Meta(ge=2, le=1000)] = DEFAULT_MAX_DEPTH


class Redact(_Table):
    """``[redact]``: the built-in redaction plugin (docs/config.md, `[redact]`)."""

    ip: IpMode = "keep"
    identity: IdentityMode = "keep"
    key_env: NonEmpty | None = None
    key_file: NonEmpty | None = None
    ipv4_prefix: Prefix4 = 24
    ipv6_prefix: Prefix6 = 48
    keep_networks: list[str] = []
    token_length: TokenLength = 16
    keep_extra: list[NonEmpty] = []

    def __post_init__(self) -> None:
        for text in self.keep_networks:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"keep_networks: {text!r} is not an IP network") from None

    @property
    def enabled(self) -> bool:
        """True when any class of value is redacted."""
        return self.ip != "keep" or self.identity != "keep"

    @property
    def needs_key(self) -> bool:
        return self.ip in ("hmac", "cryptopan") or self.identity == "hmac"

    @property
    def key_source(self) -> tuple[str | None, str | None]:
        """(environment variable, file): the default variable when neither is set."""
        if self.key_env is None and self.key_file is None:
            return DEFAULT_KEY_ENV, None
        return self.key_env, self.key_file


class SeverityRule(_Table):
    """One ``[[severity.rule]]``: match on exactly one of code, action or category."""

    code: str | int | None = None
    action: NonEmpty | None = None
    category: NonEmpty | None = None
    severity: str | int | None = None
    drop: bool = False
    name: NonEmpty | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("code", "action", "category") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a rule matches on exactly one of code, action, category")
        if self.code is not None:
            try:
                self.code = str(int(self.code))
            except ValueError:
                raise ValueError(f"code: {self.code!r} is not a message ID") from None
        if self.drop == (self.severity is not None):
            raise ValueError("a rule sets either severity or drop = true")
        if self.severity is not None:
            self.severity = code_of(self.severity)


class Severity(_Table):
    """``[severity]``: the built-in severity remapping."""

    rule: list[SeverityRule] = []


class Output(_Table):
    """``[output]``: the schema of the documents written (``--schema`` wins over it)."""

    schema: Schema = "ecs"


class SiteConfig(_Table):
    """The whole site config. ``plugins`` holds one table per site plugin, by name."""

    ikefilter: Core = msgspec.field(default_factory=Core)
    redact: Redact = msgspec.field(default_factory=Redact)
    severity: Severity = msgspec.field(default_factory=Severity)
    output: Output = msgspec.field(default_factory=Output)
    time: TimeTable = msgspec.field(default_factory=TimeTable)
    ecs: EcsTable = msgspec.field(default_factory=EcsTable)
    plugins: dict[str, dict[str, Any]] = {}


class PipelineInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a plugin may want to know about the process it runs in, at configure time.

    :ivar command: the command running (``run``, ``forward``, ...), or None in a library.
    :ivar config_path: the site config file, or None; resolve relative paths against it.
    :ivar redaction: True when events are redacted (built-in or by a plugin), so
        ``event.original`` never leaves the process.
    :ivar version: the ikefilter version.
    """

    command: str | None = None
    config_path: str | None = None
    redaction: bool = False
    version: str = ""

    def resolve(self, path: str) -> str:
        """``path`` as the site config names it: a relative one is relative to the file."""
        return resolve(path, self.config_path)


def resolve(path: str, config_path: str | None) -> str:
    """``path`` from the site config at ``config_path``: relative to that file's folder."""
    if config_path is None or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


# -- loading --------------------------------------------------------------------------------


def load(path: str) -> SiteConfig:
    """Read and check the site config at ``path``.

    :raises ConfigError: naming the file, the line when found, and the key.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the site config ({exc.strerror})") from None
    return loads(data, path)


def loads(data: bytes | str, path: str = "<config>") -> SiteConfig:
    """Decode site config text; ``path`` only names the source in errors."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        raw = load_toml(text)
    except TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return convert(raw, SiteConfig, path, text)


def convert(raw: Any, type_: type, path: str, text: str | None = None,
            prefix: tuple[str | int, ...] = ()) -> Any:
    """``msgspec.convert`` whose error names the file, line and dotted key.

    :param prefix: where ``raw`` sits in the file (``("plugins", "geoip")`` for a plugin's
        own table), so the key in the error is the one a person finds in the file.
    """
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe(exc, path, text, prefix, type_)) from None


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]+)`")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def describe(exc: msgspec.ValidationError, path: str, text: str | None,
             prefix: tuple[str | int, ...] = (), type_: Any = None) -> str:
    """Turn a msgspec validation error into ``file:line: key: what is wrong``; for a
    choice, the values ``type_`` allows there."""
    m = _AT.match(str(exc))
    what, at = (m["what"], m["path"] or "") if m else (str(exc), "")
    keys: list[str | int] = list(prefix)
    for name, index in _STEP.findall(at):
        keys.append(name if not index else "*" if index == "..." else int(index))
    unknown = _UNKNOWN.match(what)
    if unknown:
        keys.append(unknown["key"])
        what = "unknown key"
    choices = allowed(type_, keys[len(prefix):]) if type_ is not None else ()
    if choices and what.startswith("Invalid enum value"):
        what += f" (allowed: {', '.join(map(str, choices))})"
    dotted = _dotted(keys) or "(top level)"
    line = find_line(text, keys) if text is not None else None
    where = f"{path}:{line}" if line else path
    return f"{where}: {dotted}: {what}"


def _dotted(keys: list[str | int]) -> str:
    out = ""
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_KEY_PART = re.compile(_BARE_OR_QUOTED)


def _split_key(text: str) -> list[str]:
    return [part.strip("\"'") for part in _KEY_PART.findall(text)]


def find_line(text: str, keys: list[str | int]) -> int | None:
    """The 1-based line that defines ``keys`` (a table header or a ``key =`` line), if any.

    Cheap and approximate: it follows table headers and ``key =`` lines, which is what a
    site config holds; a key inside an inline table is attributed to that table's line.
    """
    want = tuple(keys)
    table: tuple[str | int, ...] = ()
    counts: dict[tuple, int] = {}
    best: tuple[int, int] | None = None  # (matched length, line)
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            parts: tuple[str | int, ...] = tuple(_split_key(header[2]))
            if header[1] == "[[":
                index = counts.get(parts, 0)
                counts[parts] = index + 1
                parts = (*parts, index)
            table = parts
            full = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = table + tuple(_split_key(key[1]))
        n = _common(full, want)
        if n == len(full) and (best is None or n > best[0]):
            best = (n, number)
            if n == len(want):
                break
    return best[1] if best and best[0] > 0 else None


def _common(a: tuple, b: tuple) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
