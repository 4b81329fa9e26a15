"""HMAC-SHA256 signed, expiring URLs for the local backend (S3 uses its own presigned URLs).

The signature covers the key and the expiry, so neither can be changed without the secret; the base URL is
not covered, which lets the same link work behind a proxy or a different host name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from core.keys import check_shareable, is_private_key

_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_VERSION = b"media-signed-url-v1"


class SignedUrlError(ValueError):
    """A signed URL must not be honoured."""


class SignatureExpired(SignedUrlError):
    """The URL was genuine but its expiry time has passed."""


class SignatureInvalid(SignedUrlError):
    """The URL was not produced with this secret, or was changed afterwards, or is malformed."""


def _require_secret(secret: str) -> bytes:
    # Plain ValueError, not SignedUrlError: a missing secret is a deployment bug, not a bad link, and must
    # not be turned into a quiet 403 by handlers that catch SignedUrlError.
    if not isinstance(secret, str) or secret == "":
        raise ValueError("signing secret is empty; configure a non-empty secret for signed URLs")
    return secret.encode("utf-8")


def _signature(secret: bytes, key: str, expires: int) -> str:
    # Expiry first and as a decimal integer, newline-separated: the message cannot be re-split differently.
    message = b"\n".join((_VERSION, str(expires).encode("ascii"), key.encode("utf-8")))
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_url(
    base_url: str, key: str, secret: str, expires_in_seconds: int, *, now: float | None = None
) -> str:
    """`{base_url}/{quoted key}?expires=<unix>&signature=<hex>`, valid until `now + expires_in_seconds`."""
    secret_bytes = _require_secret(secret)
    check_shareable(key)  # the quarantine area is never granted, whoever asks
    if expires_in_seconds <= 0:
        raise ValueError(f"expires_in_seconds must be positive, got {expires_in_seconds}")
    current = time.time() if now is None else now
    expires = int(current) + int(expires_in_seconds)
    signature = _signature(secret_bytes, key, expires)
    return f"{base_url.rstrip('/')}/{quote(key, safe='/')}?expires={expires}&signature={signature}"


def verify_signed_url(url: str, secret: str, *, now: float | None = None) -> str:
    """Return the key a signed URL grants, or raise SignatureInvalid / SignatureExpired.

    The base URL is not known here, so every path suffix is tried as the key; only the one that was
    signed can match the HMAC, and a key needs only a handful of tries.
    """
    secret_bytes = _require_secret(secret)
    parts = urlsplit(url)
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise SignatureInvalid("signed URL has a malformed query string") from None
    values = dict(params)
    if len(params) != 2 or set(values) != {"expires", "signature"}:
        raise SignatureInvalid("signed URL must carry exactly one 'expires' and one 'signature'")
    expires_text, signature = values["expires"], values["signature"]
    if not _EXPIRES.fullmatch(expires_text) or not _SIGNATURE.fullmatch(signature):
        raise SignatureInvalid("signed URL has a malformed expiry or signature")
    expires = int(expires_text)

    segments = parts.path.split("/")
    key: str | None = None
    for start in range(len(segments) - 1, 0, -1):
        candidate = unquote("/".join(segments[start:]), errors="replace")
        if hmac.compare_digest(_signature(secret_bytes, candidate, expires), signature):
            key = candidate
            break
    if key is None:
        raise SignatureInvalid("signed URL signature does not match its key and expiry")
    if is_private_key(key):
        raise SignatureInvalid("signed URL names the quarantine area, which is never served")
    current = time.time() if now is None else now
    if current > expires:
        raise SignatureExpired(f"signed URL expired at {expires} (now {int(current)})")
    return key
