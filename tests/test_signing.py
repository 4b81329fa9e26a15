"""Signed URLs must open exactly the object they were made for, only until they expire."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from core.keys import InvalidKeyError
from core.signing import (
    SignatureExpired,
    SignatureInvalid,
    SignedUrlError,
    sign_url,
    verify_signed_url,
)

BASE = "http://localhost:8080/media"
SECRET = "s3cr3t-for-tests"
NOW = 1_700_000_000.0
KEY = "originals/ab/cd/photo=1+2.jpg"


def signed(key: str = KEY, ttl: int = 600) -> str:
    return sign_url(BASE, key, SECRET, ttl, now=NOW)


def test_signed_url_has_the_documented_shape() -> None:
    url = signed()
    parts = urlsplit(url)
    query = parse_qs(parts.query)

    assert url.startswith(f"{BASE}/originals/ab/cd/")
    assert query["expires"] == [str(int(NOW) + 600)]
    assert len(query["signature"][0]) == 64


def test_valid_url_returns_its_key_until_it_expires() -> None:  # '=' and '+' survive quoting
    url = signed()
    assert verify_signed_url(url, SECRET, now=NOW) == KEY
    assert verify_signed_url(url, SECRET, now=NOW + 600) == KEY


def test_url_is_rejected_as_expired_after_its_expiry() -> None:
    with pytest.raises(SignatureExpired):
        verify_signed_url(signed(), SECRET, now=NOW + 601)


def test_base_url_with_trailing_slash_does_not_double_the_slash() -> None:
    url = sign_url(BASE + "/", KEY, SECRET, 60, now=NOW)
    assert "/media/originals/" in url
    assert verify_signed_url(url, SECRET, now=NOW) == KEY


def test_tampered_key_is_invalid() -> None:
    url = signed()
    assert "/photo%3D1%2B2.jpg?" in url
    url = url.replace("/photo%3D1%2B2.jpg?", "/other.jpg?")
    with pytest.raises(SignatureInvalid):
        verify_signed_url(url, SECRET, now=NOW)


def test_dropping_a_leading_path_segment_of_the_key_is_invalid() -> None:
    url = signed().replace("/originals/", "/")
    with pytest.raises(SignatureInvalid):
        verify_signed_url(url, SECRET, now=NOW)


def test_tampered_expiry_is_invalid_not_merely_expired() -> None:
    original = str(int(NOW) + 600)
    later = signed().replace(f"expires={original}", f"expires={int(NOW) + 999_999}")
    earlier = signed().replace(f"expires={original}", f"expires={int(NOW) - 5}")
    with pytest.raises(SignatureInvalid):
        verify_signed_url(later, SECRET, now=NOW)
    with pytest.raises(SignatureInvalid):
        verify_signed_url(earlier, SECRET, now=NOW)


def test_tampered_signature_is_invalid() -> None:
    url = signed()
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(SignatureInvalid):
        verify_signed_url(url.replace(signature, flipped), SECRET, now=NOW)


def test_url_signed_with_another_secret_is_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signed_url(signed(), "another-secret", now=NOW)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "expires=1",
        "signature=" + "0" * 64,
        "expires=abc&signature=" + "0" * 64,
        "expires=1&signature=xyz",
        "expires=1&expires=2&signature=" + "0" * 64,
        "expires=1&signature=" + "0" * 64 + "&extra=1",
    ],
)
def test_malformed_query_is_invalid(query: str) -> None:
    with pytest.raises(SignatureInvalid):
        verify_signed_url(f"{BASE}/{KEY}?{query}", SECRET, now=NOW)


def test_signed_url_errors_are_value_errors() -> None:
    assert issubclass(SignatureExpired, SignedUrlError)
    assert issubclass(SignatureInvalid, SignedUrlError)
    assert issubclass(SignedUrlError, ValueError)


def test_empty_secret_is_refused_with_a_configuration_error_by_both_functions() -> None:
    with pytest.raises(ValueError, match="secret is empty") as signing:
        sign_url(BASE, KEY, "", 60, now=NOW)
    with pytest.raises(ValueError, match="secret is empty") as verifying:
        verify_signed_url(signed(), "", now=NOW)
    # Not a SignedUrlError: handlers that answer 403 for bad links must not hide a misconfiguration.
    assert not isinstance(signing.value, SignedUrlError)
    assert not isinstance(verifying.value, SignedUrlError)


def test_signing_refuses_invalid_keys_and_non_positive_lifetimes() -> None:
    with pytest.raises(InvalidKeyError):
        sign_url(BASE, "../etc/passwd", SECRET, 60, now=NOW)
    with pytest.raises(ValueError, match="positive"):
        sign_url(BASE, KEY, SECRET, 0, now=NOW)
