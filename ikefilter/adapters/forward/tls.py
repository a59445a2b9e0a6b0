"""TLS contexts for the forward server and for the next hop: TLS 1.2 or later."""

from __future__ import annotations

import os
import ssl


def server_tls_context(cert: str | os.PathLike, key: str | os.PathLike | None = None
                       ) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) for the certificate chain and key.

    :raises ValueError: when the files cannot be read or do not match; the message names
        the files, never their content.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    files = f"{cert}" if key is None else f"{cert} and {key}"

    def no_passphrase() -> bytes:  # else OpenSSL would prompt on the terminal
        raise ValueError(f"TLS private key in {key or cert} is encrypted: give it unencrypted, "
                         "in a file only the service user can read")

    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError:
        raise ValueError(
            f"TLS certificate {files}: not a PEM certificate chain with its private key"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"TLS certificate {files}: cannot load ({reason})") from None
    return context


def client_tls_context(ca: str | os.PathLike | None = None) -> ssl.SSLContext:
    """A client-side TLS context (TLS 1.2 or later) that checks certificates and host names.

    :param ca: PEM file of the CAs to trust; the system's when None.
    :raises ValueError: when the CA file cannot be read (the message names the file).
    """
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "invalid"
        raise ValueError(f"TLS CA file {ca}: cannot load ({reason})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
