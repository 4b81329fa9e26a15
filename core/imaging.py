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
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import AfterValidator, Field, model_validator

from core.config import ConfigModel, load_model, validate_model
from core.media_types import WEB_IMAGE_MIME_TYPES, ImageRules, image_rules, refuse_moved_max_pixels

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


class UploadLimits(ConfigModel):
    """variants.yaml `uploads:` (OWASP upload validation and the sensor's budget); one default each. The
    pixel limit is images.yaml's, shared with the migration and the renderer."""

    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    max_document_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    batch_size: int = Field(default=500, ge=1)
    min_batch: int = Field(default=25, ge=1)
    recheck_days: int = Field(default=1, ge=0)
    first_days: int = Field(default=2, ge=0)
    max_keys_per_tick: int = Field(default=5000, ge=0)
    requeue_after_minutes: int = Field(default=30, ge=0)
    linger_seconds: float = Field(default=30, ge=0)
    run_minutes: float = Field(default=10, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _max_pixels_has_moved(cls, data: Any) -> Any:
        return refuse_moved_max_pixels(data)


@dataclass(frozen=True)
class VariantPlan:
    """The whole variant configuration: specs plus execution and upload settings (from VariantsConfig)."""

    specs: tuple[VariantSpec, ...]
    threads: int
    batch_size: int
    parallelism: int
    uploads: UploadLimits

    def spec_pairs(self) -> list[tuple[str, str]]:
        return [(spec.name, spec.spec_hash) for spec in self.specs]


def _variant_name(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"variant names are letters, digits and '_', got {name!r}")
    return name


def _known_format(name: str) -> str:
    if name not in _FORMATS:
        raise ValueError(f"format must be one of {sorted(_FORMATS)}, got {name!r}")
    return name


class VariantEntry(ConfigModel):
    """One entry of variants.yaml `variants:`; `box` is required for (and only used by) thumbnails."""

    kind: Literal["thumbnail", "full"]
    format: Annotated[str, AfterValidator(_known_format)]
    quality: int = Field(default=80, ge=1, le=100)
    effort: int = Field(default=4, ge=0, le=10)
    box: int | None = Field(default=None, ge=16, le=4096)
    skip_if_larger: bool = False

    @model_validator(mode="after")
    def _thumbnails_have_a_box(self) -> VariantEntry:
        if self.kind == "thumbnail" and self.box is None:
            raise ValueError("a thumbnail needs `box` (16..4096)")
        return self


class VariantsConfig(ConfigModel):
    """config/variants.yaml, typed."""

    variants: dict[Annotated[str, AfterValidator(_variant_name)], VariantEntry] = Field(min_length=1)
    threads: int = Field(default=1, ge=1, le=64)
    batch_size: int = Field(default=200, ge=1, le=100_000)
    parallelism: int = Field(default=2, ge=1, le=256)
    uploads: UploadLimits = UploadLimits()

    def plan(self) -> VariantPlan:
        specs = tuple(
            VariantSpec(
                name=name,
                kind=entry.kind,
                format=entry.format,
                quality=entry.quality,
                effort=entry.effort,
                box=entry.box if entry.kind == "thumbnail" else None,
                skip_if_larger=entry.skip_if_larger,
            )
            for name, entry in self.variants.items()
        )
        return VariantPlan(specs, self.threads, self.batch_size, self.parallelism, self.uploads)


def parse_variant_plan(raw: dict[str, Any]) -> VariantPlan:
    """Validate the YAML mapping; a wrong entry fails loudly instead of producing odd variants."""
    return validate_model("variants", VariantsConfig, raw).plan()


def load_variant_plan() -> VariantPlan:
    return load_model("variants", VariantsConfig).plan()


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
