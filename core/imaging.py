"""Variant rendering: thumbnails and full-size WebP/AVIF from one decode, EXIF applied then stripped.

The fast path matters because every original gets five renditions:
- decode once; when only thumbnails are needed from a JPEG, `Image.draft()` lets libjpeg decode at
  1/2, 1/4 or 1/8 scale (DCT scaling), which is most of the saving;
- thumbnails are chained 600 -> 300 -> 150, each reduced from the previous one, not from full size;
- orientation is applied to each small output rather than to the full image when no full-size variant
  is rendered;
- nothing from the original's metadata is copied into a variant except the ICC colour profile: no EXIF
  (GPS, camera serials, timestamps) and no XMP.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from core.config import ConfigError, load_config
from core.media_types import WEB_IMAGE_MIME_TYPES, ImageRules, image_rules

#: Image types this platform can decode (HEIC needs a plugin it does not have).
DECODABLE_MIME_TYPES = tuple(sorted(WEB_IMAGE_MIME_TYPES))

_FORMATS: dict[str, tuple[str, str, str]] = {
    # format -> (Pillow format, mime type, extension)
    "webp": ("WEBP", "image/webp", "webp"),
    "avif": ("AVIF", "image/avif", "avif"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
}

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


class ImageDecodeError(Exception):
    """The original cannot be decoded (corrupt, truncated, too many pixels): recorded per image."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class VariantSpec:
    """One rendition from config/variants.yaml; its settings hash decides when it must be re-rendered."""

    name: str
    kind: Literal["thumbnail", "full"]
    format: str
    quality: int
    effort: int
    box: int | None = None
    skip_if_larger: bool = False

    @property
    def spec_hash(self) -> str:
        settings = {
            "kind": self.kind,
            "format": self.format,
            "quality": self.quality,
            "effort": self.effort,
            "box": self.box,
            "skip_if_larger": self.skip_if_larger,
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def mime_type(self) -> str:
        return _FORMATS[self.format][1]

    @property
    def extension(self) -> str:
        return _FORMATS[self.format][2]


@dataclass(frozen=True)
class UploadLimits:
    max_image_bytes: int = 10 * 1024 * 1024
    max_document_bytes: int = 50 * 1024 * 1024
    batch_size: int = 100
    recheck_days: int = 1
    first_days: int = 2
    max_keys_per_tick: int = 5000
    requeue_after_minutes: int = 30


@dataclass(frozen=True)
class VariantPlan:
    """The whole variant configuration: specs plus execution and upload settings."""

    specs: tuple[VariantSpec, ...]
    threads: int = 1
    batch_size: int = 200
    parallelism: int = 2
    uploads: UploadLimits = field(default_factory=UploadLimits)

    def spec_pairs(self) -> list[tuple[str, str]]:
        return [(spec.name, spec.spec_hash) for spec in self.specs]


def _int(entry: dict[str, Any], key: str, default: int | None, lo: int, hi: int, where: str) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {key} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def parse_variant_plan(raw: dict[str, Any]) -> VariantPlan:
    """Validate the YAML mapping; a wrong entry fails loudly instead of producing odd variants."""
    entries = raw.get("variants")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError("variants.yaml: `variants` must be a non-empty mapping of name -> settings")
    specs: list[VariantSpec] = []
    for name, entry in entries.items():
        where = f"variants.yaml: variant {name!r}"
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ConfigError(f"{where}: names are letters, digits and '_'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: settings must be a mapping")
        kind = entry.get("kind")
        if kind not in ("thumbnail", "full"):
            raise ConfigError(f"{where}: kind must be thumbnail or full, got {kind!r}")
        fmt = entry.get("format")
        if fmt not in _FORMATS:
            raise ConfigError(f"{where}: format must be one of {sorted(_FORMATS)}, got {fmt!r}")
        box = _int(entry, "box", None, 16, 4096, where) if kind == "thumbnail" else None
        specs.append(
            VariantSpec(
                name=name,
                kind=kind,
                format=fmt,
                quality=_int(entry, "quality", 80, 1, 100, where),
                effort=_int(entry, "effort", 4, 0, 10, where),
                box=box,
                skip_if_larger=bool(entry.get("skip_if_larger", False)),
            )
        )
    uploads_raw = raw.get("uploads") or {}
    if "max_pixels" in uploads_raw:
        raise ConfigError(
            "variants.yaml: uploads.max_pixels has moved to images.yaml (max_pixels), the one pixel limit "
            "uploads, the migration and variants share; remove it here"
        )
    defaults = UploadLimits()
    uploads = UploadLimits(
        **{
            key: _int(uploads_raw, key, getattr(defaults, key), 0, 2**40, "variants.yaml: uploads")
            for key in defaults.__dataclass_fields__
        }
    )
    return VariantPlan(
        specs=tuple(specs),
        threads=_int(raw, "threads", 1, 1, 64, "variants.yaml"),
        batch_size=_int(raw, "batch_size", 200, 1, 100_000, "variants.yaml"),
        parallelism=_int(raw, "parallelism", 2, 1, 256, "variants.yaml"),
        uploads=uploads,
    )


def load_variant_plan() -> VariantPlan:
    return parse_variant_plan(load_config("variants"))


@dataclass(frozen=True)
class RenderedVariant:
    spec: VariantSpec
    status: Literal["ready", "skipped"]
    data: bytes | None
    width: int
    height: int
    reason: str | None = None

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None


@dataclass(frozen=True)
class RenderResult:
    width: int  # oriented dimensions of the original
    height: int
    variants: list[RenderedVariant]


def fit_box(width: int, height: int, box: int) -> tuple[int, int]:
    """Size fitting `box` x `box` with the aspect ratio kept; never larger than the input."""
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not stop the image; it is dropped anyway
        return 1
    return value if isinstance(value, int) and value in range(1, 9) else 1


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def _normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency: what WebP/AVIF encoders take.

    Transparency includes a PNG tRNS colour key (`info["transparency"]`) on an RGB, grey or palette
    image: converting to RGBA turns that colour into alpha 0, as a browser shows it."""
    if image.mode == "RGBA" or (image.mode == "RGB" and "transparency" not in image.info):
        return image
    if image.mode.startswith("I;16"):
        return _from_16_bit_grey(image)
    has_alpha = image.mode in ("LA", "PA", "RGBa", "La") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _from_16_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit grey (PNG bit depth 16) scaled to 8 bits, not clipped (Pillow's own conversion clips, so
    anything above 255 of 65535 came out white), with its tRNS colour key as alpha."""
    grey = image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    key = image.info.get("transparency")
    if not isinstance(key, int):
        return grey.convert("RGB")
    import numpy as np  # installed with pandas; only 16-bit grey images with a colour key need it

    alpha = Image.fromarray(np.where(np.asarray(image) == key, 0, 255).astype(np.uint8), "L")
    return Image.merge("RGBA", (grey, grey, grey, alpha))


def encode(
    image: Image.Image,
    spec: VariantSpec,
    *,
    icc_profile: bytes | None,
    threads: int = 1,
    palette_lossless_max_pixels: int = 0,
) -> bytes:
    """Encode with only the colour profile kept: `exif=b""` and `xmp=b""` make the stripping explicit.

    WebP of an image with at most 256 colours and at most `palette_lossless_max_pixels` pixels (icons,
    logos, diagrams) is also encoded lossless and the smaller kept: lossy WebP smears their flat colours
    and hard edges and is usually 2-5x larger than lossless there."""
    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": spec.quality}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if spec.format == "webp":
        image.save(buffer, "WEBP", method=min(spec.effort, 6), exif=b"", xmp=b"", **options)
        if image.width * image.height <= palette_lossless_max_pixels and image.getcolors(256) is not None:
            lossless = io.BytesIO()
            image.save(
                lossless, "WEBP", lossless=True, method=min(spec.effort, 6), exif=b"", xmp=b"", **options
            )
            if lossless.tell() <= buffer.tell():
                return lossless.getvalue()
    elif spec.format == "avif":
        image.save(buffer, "AVIF", speed=spec.effort, max_threads=threads, exif=b"", xmp=b"", **options)
    else:
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageDecodeError("unreadable_image", f"cannot open image: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("decompression_bomb", str(exc)) from exc
    if image.width * image.height > max_pixels:
        raise ImageDecodeError(
            "decompression_bomb",
            f"{image.width}x{image.height} = {image.width * image.height:,} pixels is over the "
            f"{max_pixels:,} limit",
        )
    return image


def render_variants(
    data: bytes,
    specs: tuple[VariantSpec, ...] | list[VariantSpec],
    *,
    original_size: int | None = None,
    rules: ImageRules | None = None,
    threads: int = 1,
) -> RenderResult:
    """Render `specs` from the original's bytes; raise ImageDecodeError when it cannot be decoded.

    The pixel limit is config/images.yaml's (`rules` only to test others), the one the migration and
    upload validation apply, so an original they accepted is never refused here."""
    rules = rules or image_rules()
    max_pixels, lossless_up_to = rules.max_pixels, rules.palette_lossless_max_pixels
    original_size = len(data) if original_size is None else original_size
    thumbs = sorted((s for s in specs if s.kind == "thumbnail"), key=lambda s: s.box or 0, reverse=True)
    fulls = [s for s in specs if s.kind == "full"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, max_pixels)
        try:
            raw_w, raw_h = image.size
            if not fulls and thumbs and image.format == "JPEG":
                # DCT-domain downscale: decode straight to >= the largest thumbnail's size.
                image.draft(
                    "RGB" if image.mode in ("RGB", "YCbCr") else None,
                    fit_box(raw_w, raw_h, thumbs[0].box or 1),
                )
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF/WebP: variants are stills of the first frame
            image.load()  # before getexif(): PNG's getexif() would load (and hide errors) itself
            orientation = _orientation(image)
            icc = image.info.get("icc_profile")
            base = _normalise_mode(image)
        except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombWarning) as exc:
            image.close()
            raise ImageDecodeError("undecodable_image", f"pixel data cannot be decoded: {exc}") from exc
    swapped = orientation in (5, 6, 7, 8)
    width, height = (raw_h, raw_w) if swapped else (raw_w, raw_h)
    rendered: list[RenderedVariant] = []
    try:
        if fulls:
            oriented = _orient(base, orientation)
            for spec in fulls:
                rendered.append(_finish(oriented, spec, icc, threads, original_size, lossless_up_to))
        current = base
        for spec in thumbs:
            target = fit_box(raw_w, raw_h, spec.box or 1)
            if target != current.size:
                current = current.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            oriented = _orient(current, orientation)
            rendered.append(_finish(oriented, spec, icc, threads, original_size, lossless_up_to))
    except (OSError, ValueError) as exc:
        raise ImageDecodeError("encode_failed", f"variant cannot be encoded: {exc}") from exc
    finally:
        image.close()
    order = {spec.name: i for i, spec in enumerate(specs)}
    rendered.sort(key=lambda r: order[r.spec.name])
    return RenderResult(width, height, rendered)


def _finish(
    image: Image.Image,
    spec: VariantSpec,
    icc: bytes | None,
    threads: int,
    original_size: int,
    palette_lossless_max_pixels: int = 0,
) -> RenderedVariant:
    data = encode(
        image, spec, icc_profile=icc, threads=threads, palette_lossless_max_pixels=palette_lossless_max_pixels
    )
    if spec.skip_if_larger and len(data) >= original_size:
        return RenderedVariant(
            spec,
            "skipped",
            None,
            image.width,
            image.height,
            reason=f"{spec.format} would be {len(data):,} bytes, not smaller than the "
            f"{original_size:,}-byte original",
        )
    return RenderedVariant(spec, "ready", data, image.width, image.height)
