"""IKE identities that name a user, as ECS ``user.*``.

An IKE identity is often a gateway's (an address, a host name, a certificate's subject), and
sometimes a person's: an e-mail address (``bob@corp.example``, IKE's USER_FQDN) or a Windows
logon (``CORP\\bob``). Only those two forms are taken as users: ``user.email``,
``user.name`` (the part before the ``@``, or after the ``\\``) and ``user.domain``. A
``userid`` parameter always names a user: a plain one is ``user.name`` as sent.
"""

from __future__ import annotations

import re

UserFields = tuple[str | None, str | None, str | None]
"""(``user.name``, ``user.email``, ``user.domain``)"""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"([^\s@\\=,\"<>()\[\]]+)@((?:{_LABEL}\.)+{_LABEL})")
_LOGON = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})\\([^\s\\@=,\"]+)")
_CACHE_MAX = 4096
_users: dict[tuple[str, bool], UserFields | None] = {}


def user_fields(identity: str, always: bool = False) -> UserFields | None:
    """The user ``identity`` names, or None when it does not look like a user's.

    :param always: the identity names a user whatever its form (``userid``): a plain one
        is the name.
    """
    key = (identity, always)
    hit = _users.get(key, False)
    if hit is False:
        hit = _read(identity, always)
        if len(_users) >= _CACHE_MAX:
            _users.clear()
        _users[key] = hit
    return hit  # type: ignore[return-value]


def _read(identity: str, always: bool) -> UserFields | None:
    m = _EMAIL.fullmatch(identity)
    if m is not None:
        return m[1], identity, m[2].lower()
    m = _LOGON.fullmatch(identity)
    if m is not None:
        return m[2], None, m[1]
    return (identity, None, None) if always and identity else None
