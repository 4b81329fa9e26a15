"""Key validation is the storage layer's first line of defence: tested by example and by property."""

from __future__ import annotations

import datetime
import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_LEN,
    InvalidKeyError,
    build_key,
    original_key,
    safe_segment,
    upload_key,
    validate_key,
    validate_prefix,
    variant_key,
)

SHA = "ab" + "cd" + "0123456789abcdef" * 3 + "0123456789ab"
assert len(SHA) == 64


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "originals/ab/cd/file.jpg",
        "A-Z_a-z.0-9=+",
        "a..b/c",  # only a whole '..' segment climbs; this is an ordinary name
        "x" * MAX_SEGMENT_LEN,
        "/".join(["y" * 100] * 10),
    ],
)
def test_validate_key_accepts_and_returns_safe_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a\\b", "backslash"),
        ("..", "relative"),
        ("a/../b", "relative"),
        ("./a", "relative"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        (".meta/x", "starting with '.'"),
        ("a/.hidden", "starting with '.'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
        ("a\u200bb", "non-printable"),
        ("a\u2028b", "non-printable"),
        ("a b", "only A-Z"),
        ("a?b", "only A-Z"),
        ("caf\u00e9", "only A-Z"),
        ("x" * (MAX_SEGMENT_LEN + 1), "segment of"),
        ("/".join(["y" * 200] * 6), "UTF-8 bytes"),
    ],
)
def test_validate_key_refuses_unsafe_keys_and_says_why(key: str, reason: str) -> None:
    with pytest.raises(InvalidKeyError, match=reason):
        validate_key(key)


def test_invalid_key_error_is_a_value_error() -> None:
    assert issubclass(InvalidKeyError, ValueError)


def test_validate_key_limits_keys_to_1024_utf8_bytes() -> None:
    at_limit = "/".join(["z" * 200] * 5) + "/" + "z" * (MAX_KEY_BYTES - 1005)
    assert len(at_limit.encode()) == MAX_KEY_BYTES
    assert validate_key(at_limit) == at_limit
    with pytest.raises(InvalidKeyError, match="1025 UTF-8 bytes"):
        validate_key(at_limit + "z")


def test_error_messages_stay_short_for_huge_keys() -> None:
    with pytest.raises(InvalidKeyError) as caught:
        validate_key("a" * 100_000)
    assert len(str(caught.value)) < 200


def test_validate_prefix_allows_empty_and_trailing_slash_but_not_traversal() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("originals/") == "originals/"
    assert validate_prefix("originals/a") == "originals/a"
    for bad in ("/", "../", "a//", ".meta/"):
        with pytest.raises(InvalidKeyError):
            validate_prefix(bad)


# -- safe_segment -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("My Holiday Photo (1).JPG", "My-Holiday-Photo-1.JPG"),
        ("../../etc/passwd", "etc-passwd"),
        (".hidden", "hidden"),
        ("résumé.pdf", "resume.pdf"),
        ("\ufb01le\uff0fname.png", "file-name.png"),  # NFKC: ligature and full-width slash
        ("日本語.png", "unnamed.png"),
        ("", "unnamed"),
        ("...", "unnamed"),
        ("a\x00b\nc", "a-b-c"),
        ("user@example.com", "user-example.com"),
    ],
)
def test_safe_segment_turns_untrusted_names_into_readable_segments(raw: str, expected: str) -> None:
    assert safe_segment(raw) == expected


def test_safe_segment_truncates_but_keeps_the_extension() -> None:
    result = safe_segment("x" * 500 + ".jpeg", max_len=50)
    assert result == "x" * 45 + ".jpeg"


def test_safe_segment_respects_tiny_max_len() -> None:
    assert safe_segment("abcdef.jpeg", max_len=3) == "abc"
    assert safe_segment("", max_len=3) == "unn"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=MAX_SEGMENT_LEN))
def test_safe_segment_of_any_text_is_one_valid_segment(raw: str, max_len: int) -> None:
    segment = safe_segment(raw, max_len=max_len)

    assert validate_key(segment) == segment
    assert "/" not in segment
    assert 1 <= len(segment) <= max_len
    assert ".." not in segment


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8))
def test_build_key_never_yields_a_key_that_escapes_or_contains_dot_dot(parts: list[str]) -> None:
    try:
        key = build_key(*parts)
    except InvalidKeyError:
        return
    assert ".." not in key
    assert not key.startswith("/")
    normalised = posixpath.normpath(key)
    assert normalised == key  # nothing for a filesystem to collapse
    assert not normalised.startswith("..")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=6))
def test_build_key_of_safe_segments_always_succeeds(names: list[str]) -> None:
    key = build_key(*(safe_segment(name) for name in names))
    assert key.split("/") == [safe_segment(name) for name in names]


@pytest.mark.parametrize(
    "parts",
    [("a", ".."), ("a/../b",), ("a..b",), ("/abs",), ("a", ""), (), ("a\\b",), ("a", ".meta")],
)
def test_build_key_refuses_unsafe_parts(parts: tuple[str, ...]) -> None:
    with pytest.raises(InvalidKeyError):
        build_key(*parts)


def test_build_key_joins_parts_that_hold_several_segments() -> None:
    assert build_key("originals/ab", "cd", "x.jpg") == "originals/ab/cd/x.jpg"


# -- layout helpers ---------------------------------------------------------------------------------------


def test_original_key_fans_out_by_the_first_four_hex_chars() -> None:
    assert original_key(SHA, "jpg") == f"originals/ab/cd/{SHA}.jpg"


def test_variant_key_groups_renditions_under_their_original() -> None:
    assert variant_key(SHA, "thumb_256", "webp") == f"variants/ab/cd/{SHA}/thumb_256.webp"


@pytest.mark.parametrize(
    ("sha", "extension"),
    [
        (SHA.upper(), "jpg"),
        (SHA[:-1], "jpg"),
        (SHA[:-1] + "g", "jpg"),
        ("../" + SHA[3:], "jpg"),
        (SHA, "JPG"),
        (SHA, ".jpg"),
        (SHA, ""),
        (SHA, "toolongext"),
        (SHA, "j/g"),
    ],
)
def test_original_key_refuses_malformed_digests_and_extensions(sha: str, extension: str) -> None:
    with pytest.raises(InvalidKeyError):
        original_key(sha, extension)


@pytest.mark.parametrize("name", ["", "..", "a/b", ".hidden", "a b"])
def test_variant_key_refuses_unsafe_variant_names(name: str) -> None:
    with pytest.raises(InvalidKeyError):
        variant_key(SHA, name, "webp")


def test_upload_key_dates_the_path_and_sanitises_owner_and_filename() -> None:
    key = upload_key(datetime.date(2024, 3, 7), "user@example.com", "u-42", "../My Photo.HEIC")
    assert key == "uploads/2024/03/07/user-example.com/u-42-My-Photo.HEIC"


def test_upload_key_survives_hostile_owner_and_filename() -> None:
    key = upload_key(datetime.date(2024, 1, 1), "../../", "id1", "\x00/../.." + "x" * 5000)
    assert validate_key(key) == key
    assert key.startswith("uploads/2024/01/01/unnamed/id1-")


@pytest.mark.parametrize("upload_id", ["", "../x", "a/b", "-x", "x" * 65, "a.b"])
def test_upload_key_refuses_malformed_upload_ids(upload_id: str) -> None:
    with pytest.raises(InvalidKeyError):
        upload_key(datetime.date(2024, 1, 1), "owner", upload_id, "f.jpg")
