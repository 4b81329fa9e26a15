"""Key validation is the storage layer's first line of defence: tested by example and by property."""

from __future__ import annotations

import datetime
import posixpath
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.keys import (
    MAX_KEY_BYTES,
    MAX_OWNER_ID_CHARS,
    MAX_SEGMENT_LEN,
    InvalidFileName,
    InvalidKeyError,
    InvalidOwnerId,
    PrivateKeyError,
    build_key,
    check_shareable,
    encoded_segment,
    is_private_key,
    original_key,
    owner_from_segment,
    owner_segment,
    quarantine_key,
    safe_segment,
    upload_key,
    validate_key,
    validate_owner_id,
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


def test_upload_key_dates_the_path_and_keeps_plain_owner_and_filename_as_they_are() -> None:
    key = upload_key(datetime.date(2024, 3, 7), "user-42", "u-42", "My_Photo.HEIC")
    assert key == "uploads/2024/03/07/user-42/u-42-My_Photo.HEIC"


def test_upload_key_gives_a_changed_owner_or_filename_a_readable_slug_and_a_hash() -> None:
    key = upload_key(datetime.date(2024, 3, 7), "user@example.com", "u-42", "../My Photo.HEIC")
    day, owner, name = key.rsplit("/", 2)[0], key.split("/")[4], key.split("/")[5]
    assert day == "uploads/2024/03/07"
    assert owner.startswith("user-example.com+") and len(owner) == len("user-example.com+") + 16
    assert name.startswith("u-42-My-Photo+") and name.endswith(".HEIC")


def test_upload_key_survives_hostile_owner_and_filename() -> None:
    key = upload_key(datetime.date(2024, 1, 1), "../../", "id1", "\x00/../.." + "x" * 5000)
    assert validate_key(key) == key
    assert key.startswith("uploads/2024/01/01/unnamed+")


@pytest.mark.parametrize("owner", ["alice/", "../alice", "ålice", "ALICE", "alice ", "a\u0308lice", "alice."])
def test_owners_that_used_to_share_the_alice_folder_get_their_own(owner: str) -> None:
    day = datetime.date(2024, 1, 1)
    assert owner_segment(owner) != "alice"
    assert upload_key(day, owner, "u1", "f.jpg") != upload_key(day, "alice", "u1", "f.jpg")


def test_long_owner_ids_differing_after_255_chars_are_refused_not_cut() -> None:
    base = "o" * MAX_OWNER_ID_CHARS
    assert validate_owner_id(base) == base
    assert owner_segment(base) != owner_segment(base[:-1])
    with pytest.raises(InvalidOwnerId, match="over 255"):
        validate_owner_id(base + "x")


@pytest.mark.parametrize(
    ("owner", "why"),
    [
        ("ali\x00ce", "NUL"),
        ("", "empty"),
        (None, "NoneType"),
        (True, "bool"),
        (3.0, "float"),
        (b"alice", "bytes"),
        ("\ud800", "surrogate"),
    ],
)
def test_owner_ids_that_cannot_be_kept_exactly_are_refused_with_the_reason(owner: object, why: str) -> None:
    with pytest.raises(InvalidOwnerId, match=why):
        validate_owner_id(owner)
    with pytest.raises(InvalidOwnerId, match=why):
        upload_key(datetime.date(2024, 1, 1), owner, "u1", "f.jpg")


def test_int_and_uuid_owners_are_stored_as_their_str() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert validate_owner_id(42) == "42"
    assert validate_owner_id(ident) == str(ident)
    assert owner_segment(42) == "42" == owner_segment("42")


@pytest.mark.parametrize("name", [None, 7, b"x.jpg"])
def test_file_names_that_are_not_text_are_a_validation_error_not_a_type_error(name: object) -> None:
    with pytest.raises(InvalidFileName, match="file name must be a str"):
        upload_key(datetime.date(2024, 1, 1), "alice", "u1", name)


def test_plain_owner_segments_read_back_and_encoded_ones_do_not() -> None:
    assert owner_from_segment("alice") == "alice"
    assert owner_from_segment(owner_segment("ålice")) is None
    assert owner_from_segment("alice+0123456789abcdef") is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_owner_and_name_segments_are_injective_and_safe(a: str, b: str) -> None:
    """Distinct values never share a segment; every segment is a valid key segment."""
    for value in (a, b):
        segment = encoded_segment(value)
        assert validate_key(segment) == segment and ".." not in segment
    if a != b:
        assert encoded_segment(a) != encoded_segment(b)
        assert encoded_segment(a, keep_extension=False) != encoded_segment(b, keep_extension=False)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_owner_segment_never_equals_another_owners_plain_segment(owner: str) -> None:
    """An encoded segment contains '+', which no plain owner id can: `ålice` can never be `alice`."""
    segment = owner_segment(owner)
    assert segment == owner or "+" in segment


def test_quarantine_keys_are_private_and_never_shareable() -> None:
    key = quarantine_key("uploads/2024/01/01/alice/u1-x.svg")
    assert key == "quarantine/uploads/2024/01/01/alice/u1-x.svg"
    assert is_private_key(key) and not is_private_key("quarantined/x")
    with pytest.raises(PrivateKeyError):
        check_shareable(key)
    assert check_shareable("originals/ab/cd/x.png") == "originals/ab/cd/x.png"


@pytest.mark.parametrize("upload_id", ["", "../x", "a/b", "-x", "x" * 65, "a.b"])
def test_upload_key_refuses_malformed_upload_ids(upload_id: str) -> None:
    with pytest.raises(InvalidKeyError):
        upload_key(datetime.date(2024, 1, 1), "owner", upload_id, "f.jpg")
