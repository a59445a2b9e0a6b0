"""The forward protocol's shared-key handshake: HELO, PING, PONG."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec

_encoder = msgspec.msgpack.Encoder()


class HandshakeError(ValueError):
    """The shared-key handshake failed: a malformed message or a refused key."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def handshake_digest(
    salt: str | bytes, hostname: str | bytes, nonce: str | bytes, shared_key: str | bytes
) -> str:
    """``sha512_hex(salt + hostname + nonce + shared_key)`` as the handshake specifies."""
    digest = hashlib.sha512()
    for part in (salt, hostname, nonce, shared_key):
        digest.update(_as_bytes(part))
    return digest.hexdigest()


def encode_helo(nonce: bytes, auth: bytes = b"", keepalive: bool = True) -> bytes:
    """Encode ``["HELO", {nonce, auth, keepalive}]``."""
    return _encoder.encode(["HELO", {"nonce": nonce, "auth": auth, "keepalive": keepalive}])


def parse_helo(message: Any) -> tuple[bytes, bytes, bool]:
    """Return ``(nonce, auth, keepalive)`` of a decoded HELO message."""
    if not (
        isinstance(message, list)
        and len(message) == 2
        and message[0] == "HELO"
        and isinstance(message[1], dict)
    ):
        raise HandshakeError("expected HELO")
    options = message[1]
    nonce = options.get("nonce")
    if not isinstance(nonce, (str, bytes)):
        raise HandshakeError("HELO without nonce")
    auth = options.get("auth") or b""
    return _as_bytes(nonce), _as_bytes(auth), bool(options.get("keepalive", True))


def encode_ping(
    hostname: str,
    salt: str | bytes,
    nonce: bytes,
    shared_key: str | bytes,
    username: str = "",
    password: str = "",
    auth: bytes = b"",
) -> bytes:
    """Encode ``["PING", host, salt, digest, user, password_digest]``."""
    password_digest = ""
    if auth:
        password_digest = hashlib.sha512(
            auth + _as_bytes(username) + _as_bytes(password)
        ).hexdigest()
    digest = handshake_digest(salt, hostname, nonce, shared_key)
    return _encoder.encode(["PING", hostname, salt, digest, username, password_digest])


class Ping:
    """A decoded PING: ``hostname``, ``salt``, ``digest``, ``username``, ``password_digest``."""

    __slots__ = ("hostname", "salt", "digest", "username", "password_digest")

    def __init__(
        self,
        hostname: str | bytes,
        salt: str | bytes,
        digest: str | bytes,
        username: str | bytes = "",
        password_digest: str | bytes = "",
    ) -> None:
        self.hostname = hostname
        self.salt = salt
        self.digest = digest
        self.username = username
        self.password_digest = password_digest

    def verify(self, nonce: bytes, shared_key: str | bytes) -> bool:
        """True when the digest proves the client knows ``shared_key``."""
        expected = handshake_digest(self.salt, self.hostname, nonce, shared_key)
        return hmac.compare_digest(_as_bytes(self.digest), expected.encode())  # constant time


def parse_ping(message: Any) -> Ping:
    """Return the :class:`Ping` of a decoded PING message."""
    if not (
        isinstance(message, list)
        and len(message) in (4, 6)
        and message[0] == "PING"
        and all(isinstance(v, (str, bytes)) for v in message[1:])
    ):
        raise HandshakeError("expected PING")
    return Ping(*message[1:])


def encode_pong(
    ok: bool,
    reason: str,
    server_hostname: str,
    salt: str | bytes,
    nonce: bytes,
    shared_key: str | bytes,
) -> bytes:
    """Encode ``["PONG", ok, reason, server_hostname, digest]`` (digest empty when not ok)."""
    digest = handshake_digest(salt, server_hostname, nonce, shared_key) if ok else ""
    return _encoder.encode(["PONG", ok, reason, server_hostname, digest])


def parse_pong(
    message: Any, salt: str | bytes, nonce: bytes, shared_key: str | bytes
) -> tuple[bool, str]:
    """Check a decoded PONG: ``(True, "")`` when accepted and the server's digest matches."""
    if not (isinstance(message, list) and len(message) == 5 and message[0] == "PONG"):
        raise HandshakeError("expected PONG")
    _, ok, reason, server_hostname, digest = message
    if not ok:
        return False, str(reason)
    expected = handshake_digest(salt, server_hostname, nonce, shared_key)
    if not isinstance(digest, (str, bytes)) or not hmac.compare_digest(
        _as_bytes(digest), expected.encode()
    ):
        return False, "server digest mismatch"
    return True, ""
