"""Demo uploads for the quick start: a few photos (one EXIF-rotated with GPS tags) and one bad upload,
written into the uploads area the way the app does it, then registered the way the sensor does."""

from __future__ import annotations

import datetime as dt

import numpy as np
import sqlalchemy as sa

from core.imaging import load_variant_plan
from core.keys import upload_key
from core.objectstore.base import ObjectStore, sha256_hex
from core.uploads import UploadBatch, UploadCursor, discover_uploads, queue_batches

DEMO_OWNER = "demo-user"


def demo_upload_files(seed: int = 4) -> list[tuple[str, str, bytes]]:
    """(upload_id, filename, bytes): deterministic, so a rerun writes identical objects."""
    from core.demo.images import encode_image, exif_rotated_jpeg, synthetic_photo

    rng = np.random.default_rng(seed)
    files = [
        (f"demo{i}", name, encode_image(synthetic_photo(rng, w, h), fmt))
        for i, (name, fmt, w, h) in enumerate(
            [
                ("garden.jpg", "JPEG", 1600, 1200),
                ("kitchen.png", "PNG", 800, 600),
                ("pet.webp", "WEBP", 1024, 768),
            ]
        )
    ]
    files.append(("demo3", "phone-photo.jpg", exif_rotated_jpeg(rng, 1200, 900, 6)))
    files.append(("demo4", "invoice.jpg", b"#!/bin/sh\necho this is not a photo\n"))  # rejected
    return files


def drop_demo_uploads(engine: sa.Engine, store: ObjectStore, day: dt.date) -> list[UploadBatch]:
    """Write the demo files under uploads/<day>/demo-user/ (skipping identical ones), register them and
    queue their batch exactly as a sensor tick would; returns the batches a sensor would request."""
    for upload_id, filename, data in demo_upload_files():
        key = upload_key(day, DEMO_OWNER, upload_id, filename)
        sha256 = sha256_hex(data)
        existing = store.head(key)
        if existing is None or existing.sha256 != sha256:
            store.put_bytes(key, data, sha256=sha256, content_type="application/octet-stream")
    limits = load_variant_plan().uploads
    discover_uploads(engine, store, UploadCursor(through=day), day, limits)
    return queue_batches(engine, limits)
