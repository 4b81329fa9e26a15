"""Test images for the variants and uploads tests: photo-like pixels, EXIF orientation with GPS, bombs."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """Gradient + shapes + noise: compresses like a photo (not like a flat colour)."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40 + seed % 20)
    image = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x = (seed * 37 + i * 97) % max(1, width - 40)
        y = (seed * 53 + i * 61) % max(1, height - 40)
        draw.ellipse((x, y, x + 40 + i * 5, y + 30 + i * 4), fill=((i * 40) % 255, 120, (seed * 9) % 255))
    return image


def jpeg_bytes(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes() if exif is not None else b"")
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rotated_jpeg_with_gps(width: int = 400, height: int = 200) -> bytes:
    """Stored landscape (width x height) with Orientation=6: displays as portrait (height x width)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "TestCam"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    return jpeg_bytes(photo(width, height, seed=3), exif=exif)


def bomb_png() -> bytes:
    """~100 KB PNG declaring 900 MP (the demo generator's bomb, built without materialising pixels)."""
    from core.demo.images import decompression_bomb_png

    return decompression_bomb_png()


def demo_phone_jpeg(orientation: int = 6) -> bytes:
    """The demo generator's phone JPEG (EXIF orientation + GPS), 640x480 stored unrotated."""
    import numpy as np

    from core.demo.images import exif_rotated_jpeg

    return exif_rotated_jpeg(np.random.default_rng(1), 640, 480, orientation)


def seed_original(
    engine, store, data: bytes, *, owner: str = "user-1", source_pk: str = "1", info=None
) -> int:
    """Store `data` as a migrated original through the shared ingest path (what the migration does).

    `info` skips the media decision: an original catalogued by an older release that would be refused
    today (the variants job must still record its failure)."""
    from core.ingest import store_verified, upsert_object, upsert_reference
    from core.media_types import inspect_media
    from core.objectstore.base import sha256_hex

    info = info or inspect_media(data)
    blob = store_verified(store, data, sha256_hex(data), info)
    with engine.begin() as conn:
        object_id = upsert_object(conn, blob, info, store.provider, store=store)
        upsert_reference(
            conn,
            object_id=object_id,
            owner_id=owner,
            origin="migration",
            source_name="stories",
            source_table="stories",
            source_pk=source_pk,
            json_path="images[0].data",
        )
    return object_id


def corrupt_png(width: int = 300, height: int = 200) -> bytes:
    """Valid signature, header and IEND, but the compressed pixel stream is garbage."""
    data = bytearray(png_bytes(photo(width, height, seed=5)))
    start = data.index(b"IDAT") + 4 + 2  # after the chunk type and the 2-byte zlib header
    data[start : start + 200] = b"\xff" * 200
    return bytes(data)
