"""What a blob really is, from its bytes, and whether the platform accepts it: one decision for all paths.

The declared MIME type, file extension or column name is never trusted (OWASP file-upload checklist).
`inspect_media` / `inspect_media_parts` are the single decision the migration and uploads both make, and
the variant renderer relies on: type from magic bytes, the pixel limit from `config/images.yaml`, the
image's structure walked to its end marker (bytes after it are accepted and counted, not refused), and
every frame decoded. What passes here decodes when its variants are rendered.
"""

from __future__ import annotations

import io
import mmap
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config import ConfigError, config_path, load_config

#: Default byte-size limit for one blob or upload.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

#: Image types the platform decodes, serves and renders variants of.
WEB_IMAGE_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"})
IMAGE_MIME_TYPES = WEB_IMAGE_MIME_TYPES | {"image/heic"}
#: Types an `images` source accepts, and types a source allowing "any" type still refuses.
DOCUMENT_MIME_TYPES = frozenset({"application/pdf"})
REFUSED_ALWAYS = frozenset(
    {"application/x-msdownload", "application/x-executable", "application/x-mach-binary"}
)


class ImageRules(BaseModel):
    """config/images.yaml: the rules every path (migration, uploads, variants) applies to images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Above this an image is a decompression bomb: refused by migration and uploads alike, so every
    #: accepted image can be decoded by the variant renderer (which uses the same limit).
    max_pixels: int = Field(default=40_000_000, gt=0)
    #: WebP variants of images with at most 256 colours and at most this many pixels are also encoded
    #: lossless, and the smaller kept (0: never). Icons and diagrams: exact and 2-5x smaller.
    palette_lossless_max_pixels: int = Field(default=1_000_000, ge=0)
    #: An animation whose frames x canvas pixels exceed this is a decompression bomb (every frame is
    #: decoded to check it).
    max_animation_pixels: int = Field(default=400_000_000, gt=0)


def refuse_moved_max_pixels(data: Any) -> Any:
    """A `max_pixels` left in migration.yaml or variants.yaml's `uploads:` is refused with where it went:
    images.yaml holds the one pixel limit, so an old key must not silently stop applying."""
    if isinstance(data, dict) and "max_pixels" in data:
        raise ValueError(
            "max_pixels has moved to images.yaml (max_pixels), the one pixel limit the migration, "
            "uploads and variants share; remove it here"
        )
    return data


def load_image_rules() -> ImageRules:
    """Read and validate config/images.yaml (or $MEDIA_CONFIG_DIR/images.yaml)."""
    try:
        return ImageRules.model_validate(load_config("images"))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ConfigError(f"{config_path('images')}: {field}: {error['msg']}") from exc


_rules_cache: dict[tuple[str, int], ImageRules] = {}


def image_rules() -> ImageRules:
    """The configured rules, read again only when the file (or MEDIA_CONFIG_DIR) changes."""
    path = config_path("images")
    try:
        stamp = (str(path), os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        return load_image_rules()  # raises ConfigError naming the missing file
    rules = _rules_cache.get(stamp)
    if rules is None:
        rules = _rules_cache[stamp] = load_image_rules()
    return rules


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
    #: bytes after the image's end marker (camera trailers, appended metadata); kept in the object
    trailing_bytes: int | None = None


_SIGNATURES: list[tuple[bytes, int, str, str, str]] = [
    # (magic, offset, mime, extension, kind); kind "image" outside WEB_IMAGE_MIME_TYPES is an image the
    # platform recognises but does not render (stored as a file where a source accepts any type)
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg", "image"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png", "image"),
    (b"GIF87a", 0, "image/gif", "gif", "image"),
    (b"GIF89a", 0, "image/gif", "gif", "image"),
    (b"II*\x00", 0, "image/tiff", "tif", "image"),
    (b"MM\x00*", 0, "image/tiff", "tif", "image"),
    (b"II+\x00", 0, "image/tiff", "tif", "image"),  # BigTIFF
    (b"MM\x00+", 0, "image/tiff", "tif", "image"),
    (b"8BPS", 0, "image/vnd.adobe.photoshop", "psd", "image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "image/jxl", "jxl", "image"),
    (b"\xff\x0a", 0, "image/jxl", "jxl", "image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "image/jp2", "jp2", "image"),
    (b"\xff\x4f\xff\x51", 0, "image/jp2", "j2c", "image"),
    (b"\x00\x00\x01\x00", 0, "image/vnd.microsoft.icon", "ico", "image"),
    (b"%PDF-", 0, "application/pdf", "pdf", "document"),
    (b"PK\x03\x04", 0, "application/zip", "zip", "archive"),
    (b"PK\x05\x06", 0, "application/zip", "zip", "archive"),
    (b"\x1f\x8b", 0, "application/gzip", "gz", "archive"),
    (b"MZ", 0, "application/x-msdownload", "exe", "executable"),
    (b"\x7fELF", 0, "application/x-executable", "elf", "executable"),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary", "bin", "executable"),
]


def _is_bmp(data: bytes) -> bool:
    """ "BM" alone is too common a start; a BMP also declares a known DIB header size at offset 14."""
    return (
        data[:2] == b"BM"
        and len(data) >= 18
        and struct.unpack("<I", data[14:18])[0] in (12, 40, 52, 56, 64, 108, 124)
    )


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
    if _is_bmp(data):
        return "image/bmp", "bmp", "image"
    return "application/octet-stream", "bin", "other"


# -- structure: where the image ends ---------------------------------------------------------------------


class _Truncated(Exception):
    """The content ends before the image's end marker."""


class _TextBomb(Exception):
    """A compressed PNG text chunk inflates past Pillow's limits."""


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_end(buf: memoryview | mmap.mmap, n: int) -> int:
    """Offset just after EOI, walking segments and skipping entropy-coded data (so an EXIF thumbnail's
    own EOI, inside APP1, is not mistaken for the image's end)."""
    pos = 2
    while True:
        if pos + 2 > n:
            raise _Truncated
        if buf[pos] != 0xFF:  # stray bytes before a marker: libjpeg skips them with a warning, so do we
            found = _JPEG_MARKER.search(buf, pos)
            if found is None:
                raise _Truncated
            pos = found.start()
            continue
        marker = buf[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            pos += 2
            continue
        if pos + 4 > n:
            raise _Truncated
        end = pos + 2 + ((buf[pos + 2] << 8) | buf[pos + 3])
        if end > n:
            raise _Truncated
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _JPEG_MARKER.search(buf, pos)
            if found is None:
                raise _Truncated
            pos = found.start()


def _check_png_text(chunk_type: bytes, body: bytes, used: int) -> int:
    """Pillow's limits for compressed PNG text, checked here: past them Pillow raises a plain ValueError
    (at open or at load) that would read as an unreadable image, not the bomb it is."""
    if chunk_type == b"zTXt":
        _keyword, _, rest = body.partition(b"\x00")
        compressed = rest[1:]
    else:  # iTXt: keyword\0 flag method language\0 translated\0 text
        _keyword, _, rest = body.partition(b"\x00")
        if not rest or rest[0] != 1:
            return used + len(rest)
        compressed = rest[2:].split(b"\x00", 2)[-1]
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, PngImagePlugin.MAX_TEXT_CHUNK)
    except zlib.error:
        return used  # Pillow ignores a broken text chunk; so does the decision
    if inflater.unconsumed_tail or used + len(text) > PngImagePlugin.MAX_TEXT_MEMORY:
        raise _TextBomb(
            f"a compressed {chunk_type.decode()} text chunk inflates past "
            f"{PngImagePlugin.MAX_TEXT_CHUNK:,} bytes from {len(compressed):,}"
        )
    return used + len(text)


def _png_end(buf: memoryview | mmap.mmap, n: int) -> int:
    pos, text_used = 8, 0
    while True:
        if pos + 8 > n:
            raise _Truncated
        length, chunk_type = struct.unpack(">I4s", buf[pos : pos + 8])
        end = pos + 12 + length
        if end > n:
            raise _Truncated
        if chunk_type in (b"zTXt", b"iTXt"):
            text_used = _check_png_text(chunk_type, bytes(buf[pos + 8 : pos + 8 + length]), text_used)
        pos = end
        if chunk_type == b"IEND":
            return pos


def _gif_end(buf: memoryview | mmap.mmap, n: int) -> int:
    def sub_blocks(pos: int) -> int:
        while True:
            if pos >= n:
                raise _Truncated
            length = buf[pos]
            pos += 1 + length
            if length == 0:
                return pos

    if n < 13:
        raise _Truncated
    flags, pos = buf[10], 13
    if flags & 0x80:
        pos += 3 * (2 << (flags & 7))
    while True:
        if pos >= n:
            raise _Truncated
        block = buf[pos]
        if block == 0x3B:
            return pos + 1
        if block == 0x21:  # extension: label, then data sub-blocks
            pos = sub_blocks(pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size, data
            if pos + 10 > n:
                raise _Truncated
            flags = buf[pos + 9]
            pos += 10 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0) + 1
            pos = sub_blocks(pos)
        else:
            raise _Truncated  # not a block: the data ran out (or was padded) before the trailer


_BOX_TYPE = re.compile(rb"[A-Za-z0-9 ]{4}")


def _isobmff_end(buf: memoryview | mmap.mmap, n: int) -> int:
    """End of the last top-level box; what follows that is not a box header is trailing."""
    pos = 0
    while pos + 8 <= n:
        size, box_type = struct.unpack(">I4s", buf[pos : pos + 8])
        if not _BOX_TYPE.fullmatch(box_type):
            return pos
        if size == 1:
            if pos + 16 > n:
                raise _Truncated
            (size,) = struct.unpack(">Q", buf[pos + 8 : pos + 16])
        elif size == 0:
            return n
        if size < 8:
            return pos
        if pos + size > n:
            raise _Truncated
        pos += size
    return pos


def _image_end(mime: str, buf: memoryview | mmap.mmap, n: int) -> int:
    """Offset just after the image's last byte; _Truncated if the content ends before it."""
    if mime == "image/jpeg":
        return _jpeg_end(buf, n)
    if mime == "image/png":
        return _png_end(buf, n)
    if mime == "image/gif":
        return _gif_end(buf, n)
    if mime == "image/webp":
        end = 8 + struct.unpack("<I", buf[4:8])[0]
        if end > n:
            raise _Truncated
        return end
    return _isobmff_end(buf, n)  # AVIF


@contextmanager
def _view(handle: BinaryIO) -> Iterator[memoryview | mmap.mmap]:
    """The content as a buffer without copying it: the BytesIO's own buffer, or the file mapped."""
    if isinstance(handle, io.BytesIO):
        with memoryview(handle.getvalue()) as view:  # BytesIO(bytes) shares the bytes: no copy
            yield view
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        yield mapped


# -- decoding: every frame, within a memory budget -------------------------------------------------------


class _PixelBudget:
    """At most `limit` decoded pixels in memory at once across threads (one over-size decode may run
    alone), so workers checking big images side by side cannot add up to several images' worth."""

    def __init__(self) -> None:
        self._used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, limit: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._used == 0 or self._used + pixels <= limit)
            self._used += pixels
        try:
            yield
        finally:
            with self._cond:
                self._used -= pixels
                self._cond.notify_all()


_DECODE_BUDGET = _PixelBudget()
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, zlib.error)


def _bomb(width: int, height: int, max_pixels: int) -> MediaRejected:
    return MediaRejected(
        "decompression_bomb",
        f"image declares {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} limit",
    )


def _decode_every_frame(image: Image.Image, rules: ImageRules) -> None:
    """Decode all frames (an APNG or GIF whose later frames are broken never renders reliably). JPEG is
    decoded at 1/8 scale: libjpeg still entropy-decodes the whole stream, at a fraction of the work.

    Frames x canvas is bounded by `max_animation_pixels` first: thousands of highly compressible frames
    would otherwise make the check itself a way to stall a worker."""
    max_pixels = rules.max_pixels
    frames = getattr(image, "n_frames", 1)
    width, height = image.size
    pixels = width * height
    if frames * pixels > rules.max_animation_pixels:
        raise MediaRejected(
            "decompression_bomb",
            f"{frames:,} frames of {width}x{height} decode to {frames * pixels:,} pixels, over the "
            f"{rules.max_animation_pixels:,} limit",
        )
    if image.format == "JPEG":
        image.draft(
            image.mode if image.mode in ("RGB", "L", "CMYK") else None,
            (max(1, width // 8), max(1, height // 8)),
        )
        pixels = max(1, pixels // 64)
    with _DECODE_BUDGET.hold(pixels, max_pixels):
        for frame in range(frames):
            if frame:
                image.seek(frame)
                if image.width * image.height > max_pixels:
                    raise _bomb(image.width, image.height, max_pixels)
            image.load()


# -- the decision ----------------------------------------------------------------------------------------


def inspect_media(
    data: bytes,
    *,
    allowed_kinds: frozenset[str] = frozenset({"image"}),
    max_bytes: int = DEFAULT_MAX_BYTES,
    rules: ImageRules | None = None,
) -> MediaInfo:
    """Identify `data` and check it is acceptable; raise MediaRejected with a reason otherwise.

    `allowed_kinds` is what the caller accepts: {"image"} for image columns and uploads,
    {"image", "document"} to take PDFs as documents, or {"image", "document", "archive", "other"} for a
    files source that allows any type (executables are refused whatever is allowed). `rules` defaults to
    config/images.yaml; pass one only to test other limits.
    """
    return inspect_media_parts(
        len(data),
        data,
        data,
        lambda: io.BytesIO(data),
        allowed_kinds=allowed_kinds,
        max_bytes=max_bytes,
        rules=rules,
    )


def inspect_media_parts(
    size: int,
    head: bytes,
    tail: bytes,
    open_content: Callable[[], BinaryIO],
    *,
    allowed_kinds: frozenset[str] = frozenset({"image"}),
    max_bytes: int = DEFAULT_MAX_BYTES,
    rules: ImageRules | None = None,
) -> MediaInfo:
    """`inspect_media` for content that is not in memory (a spooled blob): type from its first bytes
    (>= 64), then the structure and pixels read through `open_content` (a BytesIO or a real file, which
    is memory-mapped, not read into memory). `tail` is no longer needed and kept for callers."""
    del tail
    if not size:
        raise MediaRejected("empty", "the value is empty")
    if size > max_bytes:
        raise MediaRejected("too_large", f"{size:,} bytes is over the {max_bytes:,}-byte limit")
    mime, extension, kind = sniff(head)
    if kind == "executable":
        raise MediaRejected("executable", f"content is an executable ({mime}); never stored")
    if kind == "image" and mime not in WEB_IMAGE_MIME_TYPES:
        if "other" in allowed_kinds:  # a real image the platform does not render: a file, real type kept
            return MediaInfo(mime, extension, "other")
        if "image" in allowed_kinds:
            raise MediaRejected(
                "unsupported_image",
                f"{mime} is not one of the image types this platform decodes "
                f"({', '.join(sorted(WEB_IMAGE_MIME_TYPES))})",
            )
    if kind not in allowed_kinds:
        expected = " or ".join(sorted(allowed_kinds))
        raise MediaRejected(
            f"not_{'image' if allowed_kinds == {'image'} else 'allowed'}",
            f"content is {mime} (from magic bytes), expected {expected}",
        )
    if kind != "image":
        return MediaInfo(mime, extension, kind)
    return _inspect_image(mime, extension, size, open_content, rules or image_rules())


def _inspect_image(
    mime: str, extension: str, size: int, open_content: Callable[[], BinaryIO], rules: ImageRules
) -> MediaInfo:
    """Order matters for the reason code: a compressed-text bomb and a declared size over the limit are
    `decompression_bomb` even when the file is also cut short (a bomb rarely carries all its data)."""
    max_pixels = rules.max_pixels
    with open_content() as handle:
        end: int | None
        try:
            with _view(handle) as buf:
                end = _image_end(mime, buf, size)
        except _Truncated:
            end = None
        except _TextBomb as exc:
            raise MediaRejected("decompression_bomb", str(exc)) from exc
        handle.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(handle)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise MediaRejected("decompression_bomb", f"image declares too many pixels ({exc})") from exc
            except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
                if end is None:
                    raise MediaRejected("truncated_image", f"{mime} ends before its end marker") from exc
                raise MediaRejected("unreadable_image", f"image header cannot be parsed: {exc}") from exc
            with image:
                width, height = image.size
                if width <= 0 or height <= 0:
                    raise MediaRejected("unreadable_image", f"image declares {width}x{height} pixels")
                if width * height > max_pixels:
                    raise _bomb(width, height, max_pixels)
                if end is None:
                    raise MediaRejected("truncated_image", f"{mime} ends before its end-of-image marker")
                try:
                    _decode_every_frame(image, rules)
                except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                    raise MediaRejected(
                        "decompression_bomb", f"a frame declares too many pixels ({exc})"
                    ) from exc
                except _DECODE_ERRORS as exc:
                    raise MediaRejected("undecodable_image", f"pixel data cannot be decoded: {exc}") from exc
    return MediaInfo(mime, extension, "image", width, height, trailing_bytes=size - end)
