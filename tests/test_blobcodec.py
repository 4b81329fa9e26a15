"""Strict-but-tolerant base64 decoding, data: URIs, and the JSON path walker."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.blobcodec import (
    Base64Decoder,
    CorruptBase64,
    decode_base64,
    decode_blob_text,
    expand_json_path,
    parse_data_uri,
    set_json_path,
)

PAYLOAD = bytes(range(256)) * 3 + b"\xfb\xff\xfe"  # holds bytes that encode to + / (and - _ url-safe)


def test_canonical_base64_decodes() -> None:
    assert decode_base64(base64.b64encode(PAYLOAD).decode()) == PAYLOAD


def test_line_breaks_and_whitespace_are_ignored() -> None:
    text = base64.encodebytes(PAYLOAD).decode()  # MIME style, newline every 76 chars
    assert "\n" in text
    assert decode_base64(text) == PAYLOAD
    assert decode_base64("  " + text.replace("\n", "\r\n\t ") + " ") == PAYLOAD


def test_url_safe_alphabet_and_missing_padding_decode() -> None:
    text = base64.urlsafe_b64encode(PAYLOAD + b"x").decode()
    assert "-" in text or "_" in text
    assert decode_base64(text) == PAYLOAD + b"x"
    assert decode_base64(text.rstrip("=")) == PAYLOAD + b"x"
    assert decode_base64(base64.b64encode(b"ab").decode().rstrip("=")) == b"ab"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SGVsbG8*V29ybGQ=", "invalid_character"),
        ("SGVs=bG8=", "invalid_character"),
        ("SGVsbG8gV29ybGQ+-_/", "mixed_alphabet"),
        ("SGVsbG8gV", "bad_length"),
        ("SGVsbG8===", "bad_padding"),
        ("QQ=", "bad_padding"),
        ("héllo", "invalid_character"),
    ],
)
def test_anything_else_is_corrupt_with_a_reason(text: str, code: str) -> None:
    with pytest.raises(CorruptBase64) as info:
        decode_base64(text)
    assert info.value.code == code
    assert info.value.reason


def test_data_uri_is_parsed_and_decoded() -> None:
    text = "data:image/PNG;name=x.png;base64," + base64.b64encode(PAYLOAD).decode()
    assert parse_data_uri(text)[0] == "image/png"
    decoded = decode_blob_text(text)
    assert decoded.data == PAYLOAD
    assert decoded.declared_mime == "image/png"
    assert decoded.encoded_length == len(text)


def test_data_uri_without_base64_or_header_is_corrupt() -> None:
    with pytest.raises(CorruptBase64, match="data_uri_not_base64"):
        decode_blob_text("data:text/plain,hello")
    with pytest.raises(CorruptBase64, match="bad_data_uri"):
        decode_blob_text("data:garbage")


def test_expand_json_path_lists_concrete_paths_and_skips_missing_ones() -> None:
    doc = {
        "title": "t",
        "images": [{"data": "A"}, {"caption": "no data"}, {"data": "C"}],
        "pages": [{"image": {"data": "P0"}}, {"image": None}],
        "cover": "CV",
    }
    assert list(expand_json_path(doc, "images[*].data")) == [("images[0].data", "A"), ("images[2].data", "C")]
    assert list(expand_json_path(doc, "pages[*].image.data")) == [("pages[0].image.data", "P0")]
    assert list(expand_json_path(doc, "cover")) == [("cover", "CV")]
    assert list(expand_json_path(doc, "images[1].data")) == []
    assert list(expand_json_path(doc, "missing[*].data")) == []
    assert list(expand_json_path({"images": "not a list"}, "images[*].data")) == []


def test_set_json_path_replaces_one_value_and_keeps_the_rest() -> None:
    doc = {"title": "t", "images": [{"data": "A", "caption": "c"}, {"data": "B"}], "n": 1.5}
    before = json.loads(json.dumps(doc))
    set_json_path(doc, "images[1].data", "ref")
    before["images"][1]["data"] = "ref"
    assert doc == before
    set_json_path(doc, "title", "new")
    assert doc["title"] == "new"
    with pytest.raises(KeyError):
        set_json_path(doc, "images[5].data", "x")


_B64_TEXT = st.text(alphabet="QUJDRA+/-_= \n\r\té*", max_size=40)


@settings(max_examples=400, deadline=None)
@given(
    text=_B64_TEXT,
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
    as_bytes=st.booleans(),
)
def test_decoding_in_slices_gives_the_same_bytes_or_the_same_refusal(
    text: str, cuts: list[int], as_bytes: bool
) -> None:
    """Base64Decoder (used for values read in slices) agrees with decode_base64 on every input."""
    try:
        expected: bytes | tuple[str, str] = decode_base64(text)
    except CorruptBase64 as exc:
        expected = (exc.code, exc.reason)
    decoder = Base64Decoder()
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    try:
        pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
        # ASCII slices may come as bytes (as read from the database), others as text
        fed = [p.encode() if as_bytes and p.isascii() else p for p in pieces]
        data = b"".join(decoder.feed(piece) for piece in fed)
        actual: bytes | tuple[str, str] = data + decoder.finish()
    except CorruptBase64 as exc:
        actual = (exc.code, exc.reason)
    assert actual == expected


def test_a_large_mime_wrapped_value_decodes_in_slices() -> None:
    payload = bytes(range(256)) * 4000
    text = base64.encodebytes(payload).decode()
    decoder = Base64Decoder()
    data = b"".join(decoder.feed(text[i : i + 4099]) for i in range(0, len(text), 4099))
    assert data + decoder.finish() == payload
