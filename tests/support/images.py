"""Odd image files, built byte by byte: broken animation frames, trailers, colour keys, bombs, TIFF/BMP."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.config import PROJECT_CONFIG_DIR
from tests.support.variants import photo


def use_image_rules(monkeypatch: pytest.MonkeyPatch, folder: Path, text: str) -> None:
    """Point MEDIA_CONFIG_DIR at a copy of the project's config/ whose images.yaml is `text` (a
    MEDIA_CONFIG_DIR must hold every file: there is no fallback to the project's copy)."""
    shutil.copytree(PROJECT_CONFIG_DIR, folder, dirs_exist_ok=True)
    (folder / "images.yaml").write_text(text)
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(folder))


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def apng(frames: int = 3, size: int = 48) -> bytes:
    """A valid animated PNG: the default image plus `frames - 1` more frames (fdAT chunks)."""
    images = [photo(size, size, seed=i) for i in range(frames)]
    return encode(images[0], "PNG", save_all=True, append_images=images[1:], duration=100)


def apng_with_a_broken_frame() -> bytes:
    """The first frame decodes; the last frame's compressed data is garbage (CRCs valid, so only a
    decode of that frame finds it), as in APNGs found in the wild."""
    data = apng()
    chunks = png_chunks(data)
    last = max(i for i, (kind, _) in enumerate(chunks) if kind == b"fdAT")
    kind, body = chunks[last]
    chunks[last] = (kind, body[:4] + b"\x78\x9c" + b"\xff" * (len(body) - 6))
    return data[:8] + b"".join(chunk(k, b) for k, b in chunks)


def with_trailer(data: bytes, size: int = 3000) -> bytes:
    """Bytes after the end marker, like a camera trailer or metadata an app appended."""
    return data + (b"TRAILER:" + bytes(range(256)) * (size // 256 + 1))[:size]


def jpeg_with_exif_thumbnail() -> bytes:
    """A JPEG whose APP1 holds an embedded JPEG thumbnail (with its own EOI, before the image's end)."""
    thumb = encode(photo(32, 24), "JPEG")
    app1_body = b"Exif\x00\x00" + thumb  # not a valid TIFF, but a segment skipped by its length
    app1 = b"\xff\xe1" + struct.pack(">H", len(app1_body) + 2) + app1_body
    main = encode(photo(120, 90, seed=2), "JPEG")
    return main[:2] + app1 + main[2:]


def colour_keyed_png(mode: str) -> tuple[bytes, tuple[int, int, int]]:
    """Left half opaque red, right half the transparent key colour green; RGB or palette with tRNS."""
    image = Image.new("RGB", (96, 64), (220, 30, 30))
    image.paste((0, 255, 0), (48, 0, 96, 64))
    if mode == "RGB":
        return encode(image, "PNG", transparency=(0, 255, 0)), (0, 255, 0)
    palette = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    key = palette.getpixel((60, 10))
    return encode(palette, "PNG", transparency=key), (0, 255, 0)


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF header and image descriptor declaring width x height, then a few bytes and no trailer."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02"
    return screen + descriptor + b"\xff" + b"\x00" * 255


def png_text_bomb(kind: bytes) -> bytes:
    """A small valid PNG with a compressed text chunk inflating to 50 MB (from ~50 KB)."""
    base = encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    packed = zlib.compress(b"\x00" * (50 * 1024 * 1024), 9)
    body = b"comment\x00\x00" + packed if kind == b"zTXt" else b"comment\x00\x01\x00\x00\x00" + packed
    return base[:33] + chunk(kind, body) + base[33:]


def tiff() -> bytes:
    return encode(photo(40, 30), "TIFF")


def bmp() -> bytes:
    return encode(photo(40, 30), "BMP")


def palette_icon(size: int = 64) -> bytes:
    """A small flat-colour graphic (8 colours) saved as a palette PNG: an icon or a logo."""
    from PIL import ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size // 8, size // 8, size * 7 // 8, size * 7 // 8), fill=(30, 90, 200), outline=(0, 0, 0))
    draw.rectangle((size // 3, size // 3, size * 2 // 3, size * 2 // 3), fill=(240, 180, 20))
    return encode(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG")


def grey16_keyed_png() -> bytes:
    """16-bit grey PNG: left half value 10,400 (about 40 of 255), right half the tRNS key 0x1234."""
    import numpy as np

    values = np.full((32, 64), 10_400, dtype=np.uint16)
    values[:, 32:] = 0x1234
    return encode(Image.fromarray(values), "PNG", transparency=0x1234)
