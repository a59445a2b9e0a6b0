"""Pseudonymization primitives for the redaction plugin (stdlib only).

* :class:`CryptoPAn` -- prefix-preserving IP anonymization (Xu, Fan, Ammar, Moon,
  "Prefix-Preserving IP Address Anonymization", ICNP 2002), IPv4 and IPv6, on top
  of a small pure-Python AES-128 encryptor (:class:`AES128`).
* :func:`keyed_token` -- keyed BLAKE2b token for arbitrary strings.
* :func:`truncate_ip` -- zero the host bits of an address.
* :func:`pseudo_ip` -- keyed, *not* prefix-preserving, same-family IP pseudonym.
* :func:`load_key` -- read a secret from an environment variable or a file.

Key material
------------
Secrets are **raw text**: the content of the environment variable or file, with
surrounding whitespace stripped, as UTF-8 bytes (hex is *not* decoded). The
BLAKE2b helpers use those bytes as the MAC key (keys longer than 64 bytes are
first reduced with BLAKE2b). Crypto-PAn needs exactly 32 bytes; see
:func:`cryptopan_key`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re

__all__ = [
    "AES128",
    "CryptoPAn",
    "cryptopan_key",
    "keyed_token",
    "load_key",
    "pseudo_ip",
    "truncate_ip",
]

# ---------------------------------------------------------------------------
# AES-128 (FIPS-197), encryption of single 16-byte blocks only.
# ---------------------------------------------------------------------------


def _xtime(b: int) -> int:
    b <<= 1
    return (b ^ 0x11B) if b & 0x100 else b


_Table = tuple[int, ...]


def _build_tables() -> tuple[_Table, tuple[_Table, _Table, _Table, _Table]]:
    """Compute the S-box and the four encryption T-tables from GF(2^8) arithmetic."""
    # exp/log tables over generator 3
    exp = [0] * 255
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x ^= _xtime(x)  # x * 3
    sbox = [0] * 256
    for a in range(256):
        inv = exp[(255 - log[a]) % 255] if a else 0
        s = inv
        for shift in (1, 2, 3, 4):  # affine transform
            s ^= ((inv << shift) | (inv >> (8 - shift))) & 0xFF
        sbox[a] = s ^ 0x63
    te0 = []
    for a in range(256):
        s = sbox[a]
        s2 = _xtime(s)
        te0.append((s2 << 24) | (s << 16) | (s << 8) | (s2 ^ s))
    te1 = [((t >> 8) | (t << 24)) & 0xFFFFFFFF for t in te0]
    te2 = [((t >> 16) | (t << 16)) & 0xFFFFFFFF for t in te0]
    te3 = [((t >> 24) | (t << 8)) & 0xFFFFFFFF for t in te0]
    return tuple(sbox), (tuple(te0), tuple(te1), tuple(te2), tuple(te3))


_SBOX, (_TE0, _TE1, _TE2, _TE3) = _build_tables()
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


class AES128:
    """AES-128 block encryption (ECB, one block at a time), T-table implementation.

    Only what Crypto-PAn needs: the key schedule is expanded once, and there is
    no decryption. Not constant-time; do not use it where timing side channels
    matter.
    """

    __slots__ = ("_rk", "_rks")

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError(f"AES-128 key must be 16 bytes, got {len(key)}")
        sbox = _SBOX
        w = [int.from_bytes(key[i : i + 4], "big") for i in range(0, 16, 4)]
        for i in range(4, 44):
            t = w[i - 1]
            if i % 4 == 0:
                t = (
                    (sbox[(t >> 16) & 0xFF] << 24)
                    | (sbox[(t >> 8) & 0xFF] << 16)
                    | (sbox[t & 0xFF] << 8)
                    | sbox[t >> 24]
                ) ^ (_RCON[i // 4 - 1] << 24)
            w.append(w[i - 4] ^ t)
        self._rk: tuple[int, ...] = tuple(w)
        # round keys of the nine full rounds, one 4-tuple per round
        self._rks = tuple(tuple(w[r : r + 4]) for r in range(4, 40, 4))

    def _rounds(self, block: int, rounds: int) -> tuple[int, int, int, int]:
        """Initial AddRoundKey then the first ``rounds`` full rounds on ``block``."""
        rk = self._rk
        te0, te1, te2, te3 = _TE0, _TE1, _TE2, _TE3
        s0 = (block >> 96) ^ rk[0]
        s1 = ((block >> 64) & 0xFFFFFFFF) ^ rk[1]
        s2 = ((block >> 32) & 0xFFFFFFFF) ^ rk[2]
        s3 = (block & 0xFFFFFFFF) ^ rk[3]
        for k0, k1, k2, k3 in self._rks[:rounds]:
            t0 = te0[s0 >> 24] ^ te1[(s1 >> 16) & 255] ^ te2[(s2 >> 8) & 255] ^ te3[s3 & 255] ^ k0
            t1 = te0[s1 >> 24] ^ te1[(s2 >> 16) & 255] ^ te2[(s3 >> 8) & 255] ^ te3[s0 & 255] ^ k1
            t2 = te0[s2 >> 24] ^ te1[(s3 >> 16) & 255] ^ te2[(s0 >> 8) & 255] ^ te3[s1 & 255] ^ k2
            s3 = te0[s3 >> 24] ^ te1[(s0 >> 16) & 255] ^ te2[(s1 >> 8) & 255] ^ te3[s2 & 255] ^ k3
            s0, s1, s2 = t0, t1, t2
        return s0, s1, s2, s3

    def encrypt_block(self, block: bytes) -> bytes:
        """Encrypt one 16-byte block and return the 16-byte ciphertext."""
        if len(block) != 16:
            raise ValueError(f"AES block must be 16 bytes, got {len(block)}")
        s0, s1, s2, s3 = self._rounds(int.from_bytes(block, "big"), 9)
        sb, rk = _SBOX, self._rk
        out = 0
        for i, (a, b, c, d) in enumerate(
            ((s0, s1, s2, s3), (s1, s2, s3, s0), (s2, s3, s0, s1), (s3, s0, s1, s2))
        ):
            word = (
                (sb[a >> 24] << 24)
                | (sb[(b >> 16) & 255] << 16)
                | (sb[(c >> 8) & 255] << 8)
                | sb[d & 255]
            ) ^ rk[40 + i]
            out = (out << 32) | word
        return out.to_bytes(16, "big")

    def msb(self, block: int) -> int:
        """Return the most significant bit (0 or 1) of the encryption of ``block``.

        ``block`` is the plaintext as a 128-bit big-endian integer. Only the state
        word and the byte that bit depends on are computed in the last two rounds.
        """
        s0, s1, s2, s3 = self._rounds(block, 8)
        k0 = self._rks[8][0]
        t0 = (
            _TE0[s0 >> 24] ^ _TE1[(s1 >> 16) & 255] ^ _TE2[(s2 >> 8) & 255]
            ^ _TE3[s3 & 255] ^ k0
        )
        return (_SBOX[t0 >> 24] ^ (self._rk[40] >> 24)) >> 7


# ---------------------------------------------------------------------------
# Crypto-PAn
# ---------------------------------------------------------------------------

_MASK128 = (1 << 128) - 1


def cryptopan_key(secret: bytes) -> bytes:
    """Turn a secret into a 32-byte Crypto-PAn key.

    A secret of exactly 32 bytes is used as is (so keys shared with other
    Crypto-PAn implementations keep working). Anything else is derived with
    ``blake2b(secret, digest_size=32, person=b"cryptopan")``.

    :raises ValueError: if ``secret`` is empty.
    """
    if not secret:
        raise ValueError("Crypto-PAn secret is empty")
    if len(secret) == 32:
        return bytes(secret)
    return hashlib.blake2b(secret, digest_size=32, person=b"cryptopan").digest()


class CryptoPAn:
    """Prefix-preserving IP address anonymizer (Crypto-PAn), IPv4 and IPv6.

    The 32-byte key is split as in the original reference implementation: the
    first 16 bytes are the AES-128 key, the last 16 bytes, encrypted once with
    that key, form the pad. For an address of ``n`` bits (32 or 128), output bit
    ``i`` is input bit ``i`` XOR the most significant bit of
    ``AES(first i input bits || pad bits i..127)``. IPv4 addresses are placed in
    the top 32 bits of the 128-bit block, which reproduces the reference IPv4
    results; IPv6 uses all 128 bits, as the ``cryptopan``/``yacryptopan`` Python
    packages do. Two addresses sharing exactly a ``k``-bit prefix map to outputs
    sharing exactly a ``k``-bit prefix.

    Whole results are memoized per instance in an LRU cache of ``cache_size``
    entries (``0`` disables it); independently, the pad bits of up to
    ``cache_size`` prefixes at byte boundaries (/8 to /24 for IPv4, /8 to /64 for
    IPv6) are kept, so a new address under an already seen prefix is cheaper.
    """

    def __init__(self, key: bytes, cache_size: int = 65536) -> None:
        if len(key) != 32:
            raise ValueError(
                f"Crypto-PAn key must be 32 bytes, got {len(key)} (see cryptopan_key())"
            )
        self._aes = AES128(bytes(key[:16]))
        self._pad = int.from_bytes(self._aes.encrypt_block(bytes(key[16:])), "big")
        # pad bits kept below a prefix of length pos: (pad & (MASK128 >> pos))
        self._pads = tuple(self._pad & (_MASK128 >> pos) for pos in range(128))
        self._memo: dict[tuple[int, int], int] = {}
        self._memo_size = cache_size
        self._cached = (
            functools.lru_cache(maxsize=cache_size)(self._anonymize_text)
            if cache_size > 0
            else self._anonymize_text
        )

    @classmethod
    def from_secret(cls, secret: bytes, cache_size: int = 65536) -> CryptoPAn:
        """Build an anonymizer from any non-empty secret (see :func:`cryptopan_key`)."""
        return cls(cryptopan_key(secret), cache_size)

    def anonymize(self, addr: str) -> str:
        """Anonymize an IPv4 or IPv6 address given as text; return the same family.

        IPv4 comes back dotted-quad, IPv6 in the compressed RFC 5952 form; an IPv6
        zone (``%eth0``) is dropped. IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is
        anonymized as IPv6, so it does not match the plain IPv4 result.

        :raises ValueError: if ``addr`` is not an IP address.
        """
        return self._cached(addr)

    def anonymize_int(self, value: int, version: int) -> int:
        """Anonymize an address given as an integer of IP ``version`` 4 or 6."""
        if version == 4:
            if not 0 <= value < 1 << 32:
                raise ValueError("IPv4 address out of range")
            return value ^ self._flips(value << 96, 32)
        if version == 6:
            if not 0 <= value <= _MASK128:
                raise ValueError("IPv6 address out of range")
            return value ^ self._flips(value, 128)
        raise ValueError(f"IP version must be 4 or 6, got {version!r}")

    def cache_info(self) -> functools._CacheInfo | None:
        """LRU cache statistics, or ``None`` when caching is disabled."""
        info = getattr(self._cached, "cache_info", None)
        return info() if info is not None else None

    def _anonymize_text(self, addr: str) -> str:
        ip = ipaddress.ip_address(addr)
        if ip.version == 4:
            return str(ipaddress.IPv4Address(self.anonymize_int(int(ip), 4)))
        return str(ipaddress.IPv6Address(self.anonymize_int(int(ip), 6)))

    def _flips(self, block: int, bits: int) -> int:
        """The ``bits``-bit one-time pad for the address held in the top of ``block``.

        Pad bit ``i`` depends only on the first ``i`` address bits, so the pad bits
        for prefixes at byte boundaries are memoized and reused by every address
        under the same prefix.
        """
        memo = self._memo
        start = result = 0
        boundaries = _MEMO_BOUNDARIES[bits]
        for plen in reversed(boundaries):
            hit = memo.get((plen, block >> (128 - plen)))
            if hit is not None:
                start, result = plen, hit
                break
        msb = self._aes.msb
        pads = self._pads
        for pos in range(start, bits):
            if pos > start and pos in boundaries and len(memo) < self._memo_size:
                memo[(pos, block >> (128 - pos))] = result
            # keep the first pos bits of the address (none when pos == 0), pad the rest
            prefix = (block >> (128 - pos)) << (128 - pos) if pos else 0
            result = (result << 1) | msb(prefix | pads[pos])
        return result


# prefix lengths whose pad bits CryptoPAn memoizes, per address width
_MEMO_BOUNDARIES = {32: (8, 16, 24), 128: (8, 16, 24, 32, 40, 48, 56, 64)}


# ---------------------------------------------------------------------------
# Keyed tokens and simple IP pseudonyms
# ---------------------------------------------------------------------------


def mac_key(key: bytes) -> bytes:
    """The BLAKE2b key of every keyed pseudonym made from the site key ``key``: the key
    itself, or its digest when it is longer than BLAKE2b takes (64 bytes)."""
    if not key:
        raise ValueError("pseudonymization key is empty")
    if len(key) > 64:  # BLAKE2b accepts keys of at most 64 bytes
        return hashlib.blake2b(key, digest_size=64, person=b"ikefilter-key").digest()
    return bytes(key)


def keyed_token(key: bytes, value: str, length: int = 16) -> str:
    """Keyed BLAKE2b token of ``value``: the first ``length`` hex characters.

    Computed as ``blake2b(value.encode("utf-8"), key=key, digest_size=32).hexdigest()``
    truncated, so it is stable across runs, hosts and Python versions, and shorter
    tokens are prefixes of longer ones.

    :param length: number of hex characters, 1 to 64.
    :raises ValueError: for an empty key or an out-of-range ``length``.
    """
    if not 1 <= length <= 64:
        raise ValueError(f"token length must be 1-64 hex characters, got {length}")
    digest = hashlib.blake2b(value.encode("utf-8"), key=mac_key(key), digest_size=32)
    return digest.hexdigest()[:length]


def truncate_ip(addr: str, v4_prefix: int = 24, v6_prefix: int = 48) -> str:
    """Zero the host bits of ``addr`` and return the network address as text.

    IPv4 keeps ``v4_prefix`` bits (0-32), IPv6 keeps ``v6_prefix`` bits (0-128).
    No ``/len`` suffix is appended; an IPv6 zone is dropped.

    :raises ValueError: for an invalid address or prefix length.
    """
    ip = ipaddress.ip_address(addr)
    bits, plen = (32, v4_prefix) if ip.version == 4 else (128, v6_prefix)
    if not 0 <= plen <= bits:
        raise ValueError(f"IPv{ip.version} prefix length must be 0-{bits}, got {plen}")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    cls = ipaddress.IPv4Address if ip.version == 4 else ipaddress.IPv6Address
    return str(cls(int(ip) & mask))


def pseudo_ip(key: bytes, addr: str) -> str:
    """Keyed pseudonym of ``addr`` that is still a valid address of the same family.

    The result is the first 4 (IPv4) or 16 (IPv6) bytes of
    ``blake2b(packed address, key=key, person=b"ikefilter-ip")``, so every spelling
    of one address maps to the same pseudonym. It is **not** prefix-preserving:
    neighbouring inputs give unrelated outputs, which may land in any range
    (private, multicast, reserved...). IPv4 pseudonyms are only 32 bits wide, so
    distinct inputs can collide once tens of thousands of addresses are seen; use
    :class:`CryptoPAn` (a bijection) when collisions matter.

    :raises ValueError: for an empty key or an invalid address.
    """
    ip = ipaddress.ip_address(addr)
    size = 4 if ip.version == 4 else 16
    digest = hashlib.blake2b(
        ip.packed, key=mac_key(key), digest_size=16, person=b"ikefilter-ip"
    ).digest()
    cls = ipaddress.IPv4Address if ip.version == 4 else ipaddress.IPv6Address
    return str(cls(digest[:size]))


# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def load_key(env: str | None, file: str | None) -> bytes:
    """Read a pseudonymization secret from environment variable ``env`` or ``file``.

    The environment variable wins when it is set and non-empty; otherwise ``file``
    is read. The secret is the raw text with surrounding whitespace stripped, as
    UTF-8 bytes (hex is not decoded; undecodable environment bytes are kept as
    they are). Error messages name the variable or path, never the secret.

    :raises ValueError: when neither source is given, or the chosen sources are
        missing, unreadable or empty.
    """
    if not env and not file:
        raise ValueError("no pseudonymization key source: set a key environment variable or file")
    problems: list[str] = []
    if env:
        # A name that is not a conventional (upper-case) variable name may be the key itself,
        # put where its name belongs: never echo it.
        shown = env if _ENV_NAME.fullmatch(env) else "named in the config (not shown)"
        raw = os.environ.get(env)
        if raw is None:
            problems.append(f"environment variable {shown} is not set")
        else:
            value = raw.strip().encode("utf-8", "surrogateescape")
            if value:
                return value
            problems.append(f"environment variable {shown} is empty")
    if file:
        try:
            with open(file, "rb") as fh:
                value = fh.read().strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            problems.append(f"key file {file} cannot be read ({reason})")
        else:
            if value:
                return value
            problems.append(f"key file {file} is empty")
    raise ValueError("pseudonymization key not found: " + "; ".join(problems))
