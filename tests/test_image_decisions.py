"""Image decisions agree across the migration, uploads and variants, and keep what they should.

Each case comes from a corpus of real odd files; the files are rebuilt here byte by byte (small, fast).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import QuarantineRecord, StoredObject, Upload, Variant
from core.config import ConfigError
from core.imaging import (
    ImageDecodeError,
    UploadLimits,
    load_variant_plan,
    parse_variant_plan,
    render_variants,
)
from core.media_types import MediaRejected, image_rules, inspect_media, inspect_media_parts
from core.migration.engine import MigrationSettings, migrate_source
from core.migration.settings import parse_migration_config
from core.migration.stream import Spool
from core.objectstore.base import sha256_hex
from core.objectstore.local import LocalObjectStore
from core.uploads import confirm_upload, process_uploads, request_upload, validate_upload
from tests.support import images
from tests.support.clock import today
from tests.support.migration import b64, sources
from tests.support.migration import bomb_png as png_declaring
from tests.support.variants import jpeg_bytes, photo, png_bytes

PLAN = load_variant_plan()


# -- helpers: one real migration of a small table, one real upload batch --------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects", signing_secret="s")


def migrate(url: str, store: LocalObjectStore, blobs: list[bytes], accept: str = "images") -> dict[int, str]:
    """Migrate `blobs` (one row each, plain base64) from a fresh table with the configured files
    source's shape; returns row id -> "stored:<key>" or "refused:<reason code>"."""
    upgrade_catalog(url)
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE odd_blobs (id int PRIMARY KEY, user_id int, data text)"))
        for i, blob in enumerate(blobs, 1):
            conn.execute(sa.text("INSERT INTO odd_blobs VALUES (:i, 1, :d)"), {"i": i, "d": b64(blob)})
    files = next(s for s in sources() if s.format == "base64")
    source = files.model_copy(
        update={"name": "odd_blobs", "table": "odd_blobs", "accept": accept, "soft_delete_column": None}
    )
    migrate_source(engine, store, source, settings=MigrationSettings(workers=2))
    with engine.connect() as conn:
        query = sa.select(QuarantineRecord).where(QuarantineRecord.source_table == "odd_blobs")
        refused = {int(r.source_pk): r.reason_code for r in conn.execute(query)}
        values = {r[0]: r[1] for r in conn.execute(sa.text("SELECT id, data FROM odd_blobs"))}
    return {
        i: f"refused:{refused[i]}" if i in refused else f"stored:{values[i]}"
        for i in range(1, len(blobs) + 1)
    }


def stored_object(url: str, key: str) -> sa.Row:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.select(StoredObject).where(StoredObject.storage_key == key)).one()


def upload_all(url: str, store: LocalObjectStore, blobs: list[bytes]) -> dict[int, sa.Row]:
    """The app's request -> PUT -> confirm flow for each blob, then one processing batch."""
    upgrade_catalog(url)
    engine = get_engine(url)
    ids = []
    for i, data in enumerate(blobs):
        with engine.begin() as conn:
            row_id, key = request_upload(
                conn, owner_id="user-1", filename=f"f{i}.bin", declared_mime=None, day=today()
            )
        store.put_bytes(key, data, sha256=sha256_hex(data), content_type="application/octet-stream")
        with engine.begin() as conn:
            assert confirm_upload(conn, key)
        ids.append(row_id)
    process_uploads(engine, store, PLAN, upload_ids=ids)
    with engine.connect() as conn:
        by_id = {r.id: r for r in conn.execute(sa.select(Upload).where(Upload.id.in_(ids)))}
    return {n: by_id[row_id] for n, row_id in enumerate(ids, 1)}


def ready_variants(url: str, object_id: int) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(Variant)
            .where(Variant.parent_object_id == object_id, Variant.status.in_(("ready", "skipped")))
        ).scalar_one()


def render_code(data: bytes) -> str | None:
    try:
        render_variants(data, PLAN.specs)
    except ImageDecodeError as exc:
        return exc.code
    return None


def upload_code(data: bytes) -> str | None:
    try:
        validate_upload(data, UploadLimits())
    except MediaRejected as exc:
        return exc.code
    return None


def code(data: bytes, **kwargs: object) -> str | None:
    try:
        inspect_media(data, **kwargs)  # type: ignore[arg-type]
    except MediaRejected as exc:
        return exc.code
    return None


# -- one pixel limit -------------------------------------------------------------------------------------


def test_the_default_pixel_limit_is_one_for_migration_uploads_and_variants(
    database_url: str, store: LocalObjectStore
) -> None:
    """45 MP: uploads refused it, the migration (64 MP) stored it and then every variant failed."""
    over = png_declaring(7500, 6000)  # 45 MP, a few hundred KB
    assert image_rules().max_pixels == 40_000_000
    assert migrate(database_url, store, [over]) == {1: "refused:decompression_bomb"}
    assert upload_code(over) == "decompression_bomb"
    assert render_code(over) == "decompression_bomb"


def test_a_configured_pixel_limit_moves_every_path_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    images.use_image_rules(monkeypatch, tmp_path / "config", "max_pixels: 10000\n")
    at_limit, over = png_bytes(photo(100, 100)), png_bytes(photo(101, 100))
    assert (code(at_limit), upload_code(at_limit), render_code(at_limit)) == (None, None, None)
    assert (code(over), upload_code(over), render_code(over)) == ("decompression_bomb",) * 3


def test_the_pixel_limit_left_in_its_old_places_is_refused_with_where_it_went(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"images\.yaml"):
        parse_migration_config({"max_pixels": 64_000_000})
    raw = {"variants": {"t": {"kind": "thumbnail", "box": 100, "format": "webp"}}}
    with pytest.raises(ConfigError, match=r"images\.yaml"):
        parse_variant_plan(raw | {"uploads": {"max_pixels": 40_000_000}})
    images.use_image_rules(monkeypatch, tmp_path / "config", "max_pixels: 0\n")
    with pytest.raises(ConfigError, match=r"images\.yaml: max_pixels"):
        image_rules()
    images.use_image_rules(monkeypatch, tmp_path / "other", "max_pixel: 5\n")
    with pytest.raises(ConfigError, match="max_pixel"):
        image_rules()


# -- every frame decodes ---------------------------------------------------------------------------------


def test_an_apng_with_a_broken_frame_is_refused_by_migration_and_uploads_alike(
    database_url: str, store: LocalObjectStore
) -> None:
    good, broken = images.apng(), images.apng_with_a_broken_frame()
    assert Image.open(io.BytesIO(broken)).n_frames == 3  # looks fine until its last frame is decoded
    migrated = migrate(database_url, store, [good, broken])
    assert migrated[1].startswith("stored:") and migrated[2] == "refused:undecodable_image"
    uploaded = upload_all(database_url, store, [good, broken])
    assert uploaded[1].status == "processed" and ready_variants(database_url, uploaded[1].object_id) == 5
    assert uploaded[2].status == "rejected" and uploaded[2].error.startswith("undecodable_image")


# -- bytes after the end marker --------------------------------------------------------------------------


TRAILED = {
    "jpeg": lambda: images.with_trailer(jpeg_bytes(photo(120, 90))),
    "png": lambda: images.with_trailer(png_bytes(photo(120, 90))),
    "gif": lambda: images.with_trailer(images.encode(photo(120, 90).convert("P"), "GIF")),
    "webp": lambda: images.with_trailer(images.encode(photo(120, 90), "WEBP")),
}


@pytest.mark.parametrize("fmt", sorted(TRAILED))
def test_bytes_after_the_end_marker_are_accepted_and_counted_in_memory_and_spooled(fmt: str) -> None:
    data = TRAILED[fmt]()
    info = inspect_media(data)
    assert (info.kind, info.width, info.height, info.trailing_bytes) == ("image", 120, 90, 3000)
    with Spool(memory_bytes=0) as spool:  # a migrated blob too big for memory: read from its file
        spool.write(data)
        assert inspect_media_parts(spool.size, spool.head, spool.tail, spool.open) == info
    assert render_code(data) is None


def test_an_image_cut_short_is_still_truncated_and_an_exif_thumbnail_is_not_the_end() -> None:
    for whole in (jpeg_bytes(photo(200, 150)), png_bytes(photo(200, 150))):
        assert code(whole[: len(whole) - 300]) == "truncated_image"
    assert inspect_media(images.jpeg_with_exif_thumbnail()).trailing_bytes == 0


def test_trailing_bytes_are_kept_and_recorded_on_the_stored_object(
    database_url: str, store: LocalObjectStore
) -> None:
    jpeg, png = TRAILED["jpeg"](), TRAILED["png"]()
    migrated = migrate(database_url, store, [jpeg, jpeg_bytes(photo(64, 48))])
    key = migrated[1].removeprefix("stored:")
    assert store.get_bytes(key) == jpeg  # nothing cut off
    assert stored_object(database_url, key).trailing_bytes == 3000
    assert stored_object(database_url, migrated[2].removeprefix("stored:")).trailing_bytes == 0
    uploaded = upload_all(database_url, store, [png])
    with get_engine(database_url).connect() as conn:
        obj = conn.execute(sa.select(StoredObject).where(StoredObject.id == uploaded[1].object_id)).one()
    assert (obj.trailing_bytes, ready_variants(database_url, obj.id)) == (3000, 5)


# -- transparency ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_a_trns_colour_key_stays_transparent_in_all_five_variants(mode: str) -> None:
    data, _key = images.colour_keyed_png(mode)
    specs = tuple(dataclasses.replace(spec, skip_if_larger=False) for spec in PLAN.specs)
    result = render_variants(data, specs)
    assert len(result.variants) == 5
    for variant in result.variants:
        assert variant.data is not None
        out = Image.open(io.BytesIO(variant.data)).convert("RGBA")
        w, h = out.size
        assert out.getpixel((w * 3 // 4, h // 2))[3] < 16, variant.spec.name  # the key colour: transparent
        assert out.getpixel((w // 4, h // 2))[3] > 240, variant.spec.name  # the rest: opaque


# -- reason codes name the real cause --------------------------------------------------------------------


def test_a_gif_declaring_four_billion_pixels_is_a_bomb_not_a_truncated_image() -> None:
    gif = images.gif_declaring(65535, 65535)
    assert code(gif) == "decompression_bomb"
    assert code(images.gif_declaring(64, 64)) == "truncated_image"  # small and cut short: truncated


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_a_png_compressed_text_bomb_is_a_bomb_not_an_unreadable_image(kind: bytes) -> None:
    bomb = images.png_text_bomb(kind)
    assert len(bomb) < 100_000
    assert code(bomb) == "decompression_bomb"
    assert upload_code(bomb) == "decompression_bomb"


# -- accept: any -----------------------------------------------------------------------------------------


def test_accept_any_stores_tiff_and_bmp_with_their_real_type_and_extension(
    database_url: str, store: LocalObjectStore
) -> None:
    migrated = migrate(database_url, store, [images.tiff(), images.bmp()], accept="any")
    found = {
        (obj.mime_type, obj.kind, obj.storage_key.rsplit(".", 1)[1])
        for obj in (stored_object(database_url, v.removeprefix("stored:")) for v in migrated.values())
    }
    assert found == {("image/tiff", "other", "tif"), ("image/bmp", "other", "bmp")}
    for value in migrated.values():
        info = store.head(value.removeprefix("stored:"))
        assert info is not None and info.content_type in ("image/tiff", "image/bmp")
    # where only web images are accepted, they are refused as what they are
    assert code(images.tiff()) == code(images.bmp()) == "unsupported_image"
    assert upload_code(images.tiff()) == "unsupported_image"


# -- small palette graphics ------------------------------------------------------------------------------


def test_small_palette_graphics_get_exact_webp_variants_smaller_than_lossy_ones() -> None:
    data = images.palette_icon(128)
    pixels = Image.open(io.BytesIO(data)).convert("RGB")
    webp = [spec for spec in PLAN.specs if spec.format == "webp"]
    result = render_variants(data, [dataclasses.replace(spec, skip_if_larger=False) for spec in webp])
    lossy = images.encode(pixels, "WEBP", quality=webp[0].quality, method=min(webp[0].effort, 6))
    for variant in result.variants:
        assert variant.data is not None
        decoded = Image.open(io.BytesIO(variant.data)).convert("RGB")
        assert list(decoded.getdata()) == list(pixels.getdata()), variant.spec.name  # no smeared edges
        assert len(variant.data) < len(lossy) / 2, variant.spec.name
    # a photo (thousands of colours) stays lossy
    photo_webp = render_variants(png_bytes(photo(120, 90)), webp[:1]).variants[0].data
    assert photo_webp is not None and b"VP8 " in photo_webp[:40]


def test_an_animation_decoding_to_too_many_pixels_in_all_is_a_bomb(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    images.use_image_rules(monkeypatch, tmp_path / "config", "max_animation_pixels: 5000\n")
    animation = images.apng(frames=3, size=48)  # 3 x 2,304 pixels
    assert code(animation) == "decompression_bomb"
    assert code(images.apng(frames=2, size=48)) is None


def test_16_bit_grey_keeps_its_tones_and_its_colour_key() -> None:
    data = images.grey16_keyed_png()
    specs = tuple(dataclasses.replace(spec, skip_if_larger=False) for spec in PLAN.specs)
    for variant in render_variants(data, specs).variants:
        assert variant.data is not None
        out = Image.open(io.BytesIO(variant.data)).convert("RGBA")
        w, h = out.size
        left, right = out.getpixel((w // 4, h // 2)), out.getpixel((w * 3 // 4, h // 2))
        assert abs(left[0] - 40) <= 4 and left[3] > 240, (variant.spec.name, left)  # not clipped to white
        assert right[3] < 16, (variant.spec.name, right)


# -- the property behind all of it -----------------------------------------------------------------------

_SEEDS = {
    "jpeg": jpeg_bytes(photo(64, 48)),
    "png": png_bytes(photo(64, 48)),
    "gif": images.encode(photo(64, 48).convert("P"), "GIF"),
    "webp": images.encode(photo(64, 48), "WEBP"),
    "apng": images.apng(frames=2, size=32),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.floats(0.3, 1)),
    trailer=st.binary(max_size=64),
)
def test_whatever_the_decision_accepts_renders(fmt: str, edits, cut, trailer: bytes) -> None:
    """Damaged images (bytes changed, cut short, bytes appended): the decision refuses with a reason code
    or accepts, and everything it accepts renders every variant."""
    data = bytearray(_SEEDS[fmt])
    for where, value in edits:
        data[16 + int(where * (len(data) - 17))] = value  # past the signature: the type stays the same
    if cut is not None:
        data = data[: max(16, int(len(data) * cut))]
    data = bytes(data) + trailer
    try:
        info = inspect_media(data)
    except MediaRejected as exc:
        assert exc.code in {"truncated_image", "undecodable_image", "unreadable_image", "decompression_bomb"}
        return
    assert info.trailing_bytes is not None and info.trailing_bytes >= 0
    render_variants(data, PLAN.specs[:3])  # raises ImageDecodeError if the decision let a bad one through
