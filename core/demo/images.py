"""Synthetic, photo-like images for the demo legacy database and the tests.

Flat colours or pure noise would make every codec look either miraculous or useless, so these images
mix what real photos have: smooth lighting gradients, a few soft out-of-focus shapes, mid-frequency
texture and per-pixel sensor grain. Everything is drawn at reduced resolution and upscaled, and the grain
comes from raw generator bytes, so a 2 MP image costs tens of milliseconds.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from fractions import Fraction
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from PIL.ExifTags import GPS, IFD, Base
from PIL.TiffImagePlugin import IFDRational

#: Shapes and gradients are drawn at 1/LOW_RES_FACTOR of the final size: they are blurred anyway.
LOW_RES_FACTOR = 8

#: Common camera / generator aspect ratios (width / height), portrait and landscape.
ASPECT_RATIOS: tuple[float, ...] = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)


def random_size(rng: np.random.Generator, min_mp: float = 0.3, max_mp: float = 4.0) -> tuple[int, int]:
    """A (width, height) with a common aspect ratio and a log-uniform pixel count, like real uploads."""
    pixels = math.exp(rng.uniform(math.log(min_mp * 1e6), math.log(max_mp * 1e6)))
    aspect = ASPECT_RATIOS[int(rng.integers(len(ASPECT_RATIOS)))]
    width = max(16, round(math.sqrt(pixels * aspect)))
    height = max(16, round(pixels / width))
    return width, height


def _gradient(rng: np.random.Generator, width: int, height: int, palette: np.ndarray) -> Image.Image:
    """A multi-stop linear gradient blended with a coarse colour field and a vignette (RGB).

    Computed on a tiny grid and upscaled: lighting has no detail worth computing per pixel.
    """
    grid_w, grid_h = max(4, width // 4), max(4, height // 4)
    stops = int(rng.integers(2, 5))
    colours = np.clip(palette + rng.normal(0, 60, (stops, 3)), 0, 255)
    positions = np.concatenate(([0.0], np.sort(rng.uniform(0, 1, stops - 2)), [1.0]))
    theta = rng.uniform(0, 2 * math.pi)
    ys = np.linspace(0.0, 1.0, grid_h, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, grid_w, dtype=np.float32)[None, :]
    t = xs * math.cos(theta) + ys * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    out = np.empty((grid_h, grid_w, 3), dtype=np.float32)
    for channel in range(3):
        out[..., channel] = np.interp(t, positions, colours[:, channel])
    # A coarse random colour field breaks the perfectly straight bands of a pure linear gradient.
    coarse = rng.uniform(0, 255, (3, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse, "RGB").resize((grid_w, grid_h), Image.Resampling.BICUBIC))
    out = out * 0.7 + field.astype(np.float32) * 0.3
    cx, cy = rng.uniform(0.2, 0.8, 2)
    vignette = 1.0 - rng.uniform(0.2, 0.5) * ((xs - cx) ** 2 + (ys - cy) ** 2)
    pixels = np.clip(out * vignette[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BILINEAR)


def _soft_shapes(rng: np.random.Generator, canvas: Image.Image, palette: np.ndarray) -> Image.Image:
    """Composite a few blurred ellipses and polygons: the out-of-focus subjects of a photo (RGB).

    Colour and coverage are blurred separately and blended with `Image.composite`, so soft edges fade
    into the background instead of into the black of a transparent overlay.
    """
    width, height = canvas.size
    for _layer in range(2):
        paint = canvas.copy()
        mask = Image.new("L", canvas.size, 0)
        draw_paint, draw_mask = ImageDraw.Draw(paint), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(2, 5))):
            colour = tuple(int(c) for c in np.clip(palette + rng.normal(0, 80, 3), 0, 255))
            opacity = int(rng.integers(90, 230))
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
            if rng.random() < 0.6:
                box = (cx - rx, cy - ry, cx + rx, cy + ry)
                draw_paint.ellipse(box, fill=colour)
                draw_mask.ellipse(box, fill=opacity)
            else:
                corners = int(rng.integers(3, 7))
                angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
                points = [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]
                draw_paint.polygon(points, fill=colour)
                draw_mask.polygon(points, fill=opacity)
        # At least ~1.5 canvas pixels of blur, or upscaling would show the rasterised stair-steps.
        blur = ImageFilter.GaussianBlur(rng.uniform(1.5, 4.0) * max(1.0, max(width, height) / 200))
        canvas = Image.composite(paint.filter(blur), canvas, mask.filter(blur))
    return canvas


def _clean_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Gradient + soft shapes + mid-frequency texture, without per-pixel grain (RGB).

    Lighting and shapes are drawn at 1/8 scale, texture is added at 1/2 scale, and only the final step
    touches every pixel: the blur and the grain hide the 2x2 blocks of that last nearest-neighbour step.
    """
    low_w = max(8, width // LOW_RES_FACTOR)
    low_h = max(8, height // LOW_RES_FACTOR)
    half_w, half_h = max(4, (width + 1) // 2), max(4, (height + 1) // 2)
    palette = rng.uniform(0, 255, 3)  # the scene's dominant colour, shared by light and subjects
    canvas = _soft_shapes(rng, _gradient(rng, low_w, low_h, palette), palette)
    half = canvas.resize((half_w, half_h), Image.Resampling.BILINEAR)
    # Luminance texture (foliage, fabric, skin) sits between the blurred shapes and the grain.
    amplitude = 1 << int(rng.integers(3, 6))  # 8, 16 or 32 levels
    raw = np.frombuffer(rng.bytes(half_w * half_h), dtype=np.uint8).reshape(half_h, half_w)
    texture = Image.fromarray(raw & np.uint8(amplitude - 1), "L")
    half = ImageChops.add(half, Image.merge("RGB", (texture,) * 3), scale=1.0, offset=-(amplitude // 2))
    return half.resize((width, height), Image.Resampling.NEAREST)


def add_grain(rng: np.random.Generator, img: Image.Image, levels: int | None = None) -> Image.Image:
    """Add per-pixel, per-channel sensor grain so no two images share pixel data (RGB in and out).

    `levels` (a power of two) is the grain's peak-to-peak range; raw generator bytes masked to it are
    an order of magnitude cheaper than drawing normal deviates.
    """
    if levels is None:
        levels = 1 << int(rng.integers(3, 5))  # 8 or 16: ISO 100-800 phone-camera noise
    width, height = img.size
    # Masked in place and wrapped without a copy: at 2 MP every extra 6 MB buffer costs milliseconds.
    buffer = bytearray(rng.bytes(width * height * 3))
    pixels = np.frombuffer(buffer, dtype=np.uint8)
    np.bitwise_and(pixels, np.uint8(levels - 1), out=pixels)
    grain = Image.frombuffer("RGB", (width, height), buffer, "raw", "RGB", 0, 1)
    return ImageChops.add(img, grain, scale=1.0, offset=-(levels // 2))


def _soft_alpha(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A feathered cut-out mask (a subject on a transparent background), 'L' mode."""
    low_w = max(8, width // LOW_RES_FACTOR)
    low_h = max(8, height // LOW_RES_FACTOR)
    mask = Image.new("L", (low_w, low_h), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(0.35, 0.65) * low_w, rng.uniform(0.35, 0.65) * low_h
    rx, ry = rng.uniform(0.25, 0.45) * low_w, rng.uniform(0.25, 0.45) * low_h
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(low_w, low_h) / 40))
    return mask.resize((width, height), Image.Resampling.BILINEAR)


def synthetic_photo(rng: np.random.Generator, width: int, height: int, *, alpha: bool = False) -> Image.Image:
    """A photo-like RGB image (RGBA with a soft cut-out mask when `alpha`), fully determined by `rng`."""
    img = add_grain(rng, _clean_photo(rng, width, height))
    if alpha:
        img = img.convert("RGBA")
        img.putalpha(_soft_alpha(rng, width, height))
    return img


def base_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A grain-free photo for a pool that `derive_variant` cuts many distinct images from."""
    return _clean_photo(rng, width, height)


def derive_variant(rng: np.random.Generator, base: Image.Image, width: int, height: int) -> Image.Image:
    """A distinct photo cut from `base`: random crop, flip, tint and fresh grain (RGB).

    Far cheaper than drawing a new picture, yet the pixels (and so the encoded bytes) always differ.
    Targets larger than `base` are cropped to the aspect ratio and upscaled.
    """
    base_w, base_h = base.size
    scale = min(1.0, base_w / width, base_h / height)
    crop_w, crop_h = max(8, int(width * scale)), max(8, int(height * scale))
    left = int(rng.integers(0, base_w - crop_w + 1))
    top = int(rng.integers(0, base_h - crop_h + 1))
    img = base.crop((left, top, left + crop_w, top + crop_h))
    if (crop_w, crop_h) != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    lut: list[int] = []
    for gain, offset in zip(rng.uniform(0.8, 1.2, 3), rng.uniform(-20, 20, 3), strict=True):
        lut.extend(min(255, max(0, int(i * gain + offset))) for i in range(256))
    return add_grain(rng, img.point(lut))


def encode_image(img: Image.Image, fmt: str, quality: int = 85) -> bytes:
    """Encode as JPEG, PNG or WEBP the way an app would have stored it (no metadata, default options)."""
    fmt = fmt.upper()
    buffer = io.BytesIO()
    if fmt in ("JPEG", "JPG"):
        img.convert("RGB").save(buffer, "JPEG", quality=quality)
    elif fmt == "PNG":
        # Level 1 keeps generation fast; noisy photos barely compress at any level.
        img.save(buffer, "PNG", compress_level=1)
    elif fmt == "WEBP":
        img.save(buffer, "WEBP", quality=quality, method=2)
    else:
        raise ValueError(f"unsupported format: {fmt}")
    return buffer.getvalue()


def _rational(value: float, denominator: int = 10_000) -> IFDRational:
    frac = Fraction(round(value * denominator), denominator)
    return IFDRational(frac.numerator, frac.denominator)


def _dms(degrees: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    whole = int(degrees)
    minutes_f = (degrees - whole) * 60
    minutes = int(minutes_f)
    seconds = (minutes_f - minutes) * 60
    return IFDRational(whole, 1), IFDRational(minutes, 1), _rational(seconds, 100)


def exif_rotated_jpeg(rng: np.random.Generator, width: int, height: int, orientation: int) -> bytes:
    """A phone-style JPEG with an EXIF Orientation tag and GPS position: both must be handled on ingest.

    Orientation 1-8 as in the EXIF spec; the pixels are stored unrotated, as cameras do.
    """
    if not 1 <= orientation <= 8:
        raise ValueError("EXIF orientation must be 1..8")
    img = synthetic_photo(rng, width, height)
    exif = Image.Exif()
    exif[Base.Orientation] = orientation
    exif[Base.Make] = "DemoPhone"
    exif[Base.Model] = "DemoPhone 12"
    exif[Base.DateTime] = "2025:06:14 10:21:07"
    latitude = float(rng.uniform(-60, 60))
    longitude = float(rng.uniform(-170, 170))
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSVersionID] = b"\x02\x02\x00\x00"
    gps[GPS.GPSLatitudeRef] = "N" if latitude >= 0 else "S"
    gps[GPS.GPSLatitude] = _dms(abs(latitude))
    gps[GPS.GPSLongitudeRef] = "E" if longitude >= 0 else "W"
    gps[GPS.GPSLongitude] = _dms(abs(longitude))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=85, exif=exif)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@lru_cache(maxsize=4)
def decompression_bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1-bit greyscale PNG of `width` x `height` zero pixels: ~100 KB that inflates to 900 MP.

    Built chunk by chunk (never materialising the pixels) so generating it costs almost no memory.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed 1-bit pixels
    compressor = zlib.compressobj(9)
    parts: list[bytes] = []
    rows_per_chunk = max(1, (1 << 20) // len(row))
    block = row * rows_per_chunk
    remaining = height
    while remaining > 0:
        take = min(rows_per_chunk, remaining)
        parts.append(compressor.compress(block if take == rows_per_chunk else row * take))
        remaining -= take
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )
