"""What a blob really is, from its bytes: magic-byte type detection and cheap structural validation.

The declared MIME type, file extension or column name is never trusted (OWASP file-upload checklist).
Checks here read headers and trailers only, so a migration can afford them on every blob; full pixel
decoding happens later, in variant generation, where a failure is recorded per image.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

#: Default pixel limit: above it an image is treated as a decompression bomb (an error, not a warning).
DEFAULT_MAX_PIXELS = 64_000_000
#: Default byte-size limit for one blob or upload.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

IMAGE_MIME_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heic"}
)
#: Types an `images` source accepts, and types a source allowing "any" type still refuses.
DOCUMENT_MIME_TYPES = frozenset({"application/pdf"})
REFUSED_ALWAYS = frozenset(
    {"application/x-msdownload", "application/x-executable", "application/x-mach-binary"}
)


class MediaRejected(Exception):
    """A blob refused with a stable reason code (for metrics) and a human-readable reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    mime_type: str
    extension: str
    kind: str  # image | document | archive | executable | other
    width: int | None = None
    height: int | None = None


_SIGNATURES: list[tuple[bytes, int, str, str, str]] = [
    # (magic, offset, mime, extension, kind)
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg", "image"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png", "image"),
    (b"GIF87a", 0, "image/gif", "gif", "image"),
    (b"GIF89a", 0, "image/gif", "gif", "image"),
    (b"%PDF-", 0, "application/pdf", "pdf", "document"),
    (b"PK\x03\x04", 0, "application/zip", "zip", "archive"),
    (b"PK\x05\x06", 0, "application/zip", "zip", "archive"),
    (b"\x1f\x8b", 0, "application/gzip", "gz", "archive"),
    (b"MZ", 0, "application/x-msdownload", "exe", "executable"),
    (b"\x7fELF", 0, "application/x-executable", "elf", "executable"),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary", "bin", "executable"),
]


def sniff(data: bytes) -> tuple[str, str, str]:
    """(mime, extension, kind) from magic bytes; ("application/octet-stream", "bin", "other") if unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp", "image"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif", "avif", "image"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1"):
            return "image/heic", "heic", "image"
    for magic, offset, mime, extension, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return mime, extension, kind
    return "application/octet-stream", "bin", "other"


def _is_truncated(mime: str, head: bytes, tail: bytes, size: int) -> bool:
    """Cheap trailer checks that catch the usual cut-off transfer without decoding pixels.

    `tail` is the end of the content (all of it, or at least its last 64 KB); a GIF whose last 64 KB are
    all NUL padding counts as truncated when only a tail is known."""
    if mime == "image/jpeg":
        return b"\xff\xd9" not in tail[-64:]
    if mime == "image/png":
        return b"IEND" not in tail[-32:]
    if mime == "image/gif":
        return not tail.rstrip(b"\x00").endswith(b"\x3b")
    if mime == "image/webp":
        (riff_size,) = struct.unpack("<I", head[4:8])
        return size < riff_size + 8
    return False


def _dimensions(image_file: BinaryIO, max_pixels: int) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(image_file) as image:
                width, height = image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaRejected("decompression_bomb", f"image declares too many pixels ({exc})") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
            raise MediaRejected("unreadable_image", f"image header cannot be parsed: {exc}") from exc
    if width <= 0 or height <= 0:
        raise MediaRejected("unreadable_image", f"image declares {width}x{height} pixels")
    if width * height > max_pixels:
        raise MediaRejected(
            "decompression_bomb",
            f"image declares {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} limit",
        )
    return width, height


def inspect_media(
    data: bytes,
    *,
    allowed_kinds: frozenset[str] = frozenset({"image"}),
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> MediaInfo:
    """Identify `data` and check it is acceptable; raise MediaRejected with a reason otherwise.

    `allowed_kinds` is what the caller accepts: {"image"} for image columns and uploads,
    {"image", "document"} to take PDFs as documents, or {"image", "document", "archive", "other"} for a
    files source that allows any type (executables are refused whatever is allowed).
    """
    return inspect_media_parts(
        len(data),
        data,
        data,
        lambda: io.BytesIO(data),
        allowed_kinds=allowed_kinds,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
    )


def inspect_media_parts(
    size: int,
    head: bytes,
    tail: bytes,
    open_content: Callable[[], BinaryIO],
    *,
    allowed_kinds: frozenset[str] = frozenset({"image"}),
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> MediaInfo:
    """`inspect_media` for content that is not in memory (a spooled blob): the same checks from its
    size, first bytes (>= 64), last bytes (>= 64 KB) and a reader for the image header."""
    if not size:
        raise MediaRejected("empty", "the value is empty")
    if size > max_bytes:
        raise MediaRejected("too_large", f"{size:,} bytes is over the {max_bytes:,}-byte limit")
    mime, extension, kind = sniff(head)
    if kind == "executable":
        raise MediaRejected("executable", f"content is an executable ({mime}); never stored")
    if kind not in allowed_kinds:
        expected = " or ".join(sorted(allowed_kinds))
        raise MediaRejected(
            f"not_{'image' if allowed_kinds == {'image'} else 'allowed'}",
            f"content is {mime} (from magic bytes), expected {expected}",
        )
    if kind != "image":
        return MediaInfo(mime, extension, kind)
    if mime == "image/heic":
        raise MediaRejected("unsupported_image", "HEIC cannot be decoded by this platform's Pillow build")
    if _is_truncated(mime, head, tail, size):
        raise MediaRejected("truncated_image", f"{mime} ends before its end-of-image marker")
    with open_content() as image_file:
        width, height = _dimensions(image_file, max_pixels)
    return MediaInfo(mime, extension, kind, width, height)
