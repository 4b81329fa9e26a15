"""Type comes from magic bytes and cheap structure checks, never from a declared MIME or a name."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from core.media_types import ImageRules, MediaRejected, inspect_media, sniff


def _image_bytes(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    color = {"RGB": (200, 100, 50), "RGBA": (200, 100, 50, 128), "1": 1}[mode]
    Image.new(mode, size, color).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime", "mode"),
    [
        ("JPEG", "image/jpeg", "RGB"),
        ("PNG", "image/png", "RGBA"),
        ("WEBP", "image/webp", "RGB"),
        ("GIF", "image/gif", "RGB"),
        ("AVIF", "image/avif", "RGB"),
    ],
)
def test_images_are_identified_with_their_dimensions(fmt: str, mime: str, mode: str) -> None:
    info = inspect_media(_image_bytes(fmt, mode=mode))
    assert (info.mime_type, info.kind, info.width, info.height) == (mime, "image", 64, 48)


def test_pdf_is_refused_where_images_are_expected_and_accepted_as_a_document() -> None:
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    with pytest.raises(MediaRejected) as refused:
        inspect_media(pdf)
    assert refused.value.code == "not_image"
    assert inspect_media(pdf, allowed_kinds=frozenset({"image", "document"})).mime_type == "application/pdf"


def test_zip_declared_as_an_image_is_identified_as_an_archive() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    assert sniff(buffer.getvalue())[2] == "archive"
    with pytest.raises(MediaRejected, match="not_image"):
        inspect_media(buffer.getvalue())


def test_executables_are_refused_even_when_any_type_is_allowed() -> None:
    with pytest.raises(MediaRejected) as refused:
        inspect_media(b"MZ\x90\x00" + b"\x00" * 100, allowed_kinds=frozenset({"image", "document", "other"}))
    assert refused.value.code == "executable"


def test_truncated_jpeg_is_refused() -> None:
    data = _image_bytes("JPEG", (300, 200))
    with pytest.raises(MediaRejected) as refused:
        inspect_media(data[: int(len(data) * 0.6)])
    assert refused.value.code == "truncated_image"


def test_decompression_bomb_is_an_error_not_a_warning() -> None:
    bomb = _image_bytes("PNG", (20_000, 20_000), mode="1")  # 400 MP of 1-bit pixels, tiny file
    assert len(bomb) < 200_000
    with pytest.raises(MediaRejected) as refused:
        inspect_media(bomb, rules=ImageRules(max_pixels=50_000_000))
    assert refused.value.code == "decompression_bomb"


def test_empty_and_oversized_values_are_refused_with_their_reason() -> None:
    with pytest.raises(MediaRejected, match="empty"):
        inspect_media(b"")
    with pytest.raises(MediaRejected, match="too_large"):
        inspect_media(_image_bytes("PNG"), max_bytes=10)
