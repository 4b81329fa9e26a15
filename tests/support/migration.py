"""Small legacy tables shaped like the demo database, for the migration tests (real Postgres)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import struct
import zlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from PIL import Image

from core.blobcodec import decode_blob_text, expand_json_path
from core.catalog.db import get_engine, upgrade_catalog
from core.migration.references import is_reference
from core.objectstore.base import ObjectStore
from core.sources import BlobSource, load_sources_config

SCHEMA_SQL = """
CREATE TABLE users (id bigint PRIMARY KEY, email text, last_login_at timestamptz, deleted_at timestamptz);
CREATE TABLE stories (id serial PRIMARY KEY, user_id bigint, data text, deleted_at timestamptz);
CREATE TABLE characters (id serial PRIMARY KEY, user_id bigint, name text, photo text,
                         deleted_at timestamptz);
CREATE TABLE files (id serial PRIMARY KEY, user_id bigint, filename text, mime_type text, data text,
                    deleted_at timestamptz);
CREATE TABLE story_jobs (id serial PRIMARY KEY, user_id bigint, result jsonb);
"""


def jpeg(seed: int, size: int = 24) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(10):
        x, y = rng.randrange(size), rng.randrange(size)
        image.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def png(seed: int, size: int = 16) -> bytes:
    image = Image.new("RGB", (size, size), (seed % 256, 40, 90))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header declares 400 megapixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ZIP = b"PK\x03\x04" + b"\0" * 40
EXE = b"MZ\x90\x00" + b"\0" * 60


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class LegacyFixture:
    """What was written: the expected bad payloads and the SHA-256 of every good original."""

    bad: list[tuple[str, str, str, str]] = field(default_factory=list)  # (table, pk, json_path, reason_code)
    good: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (table, pk, path) -> sha256


def create_legacy_tables(url: str, *, stories: int = 4, images_per_story: int = 3) -> LegacyFixture:
    """Create and fill the five tables; includes duplicates, odd encodings and every kind of bad input."""
    upgrade_catalog(url)
    fixture = LegacyFixture()
    engine = get_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA_SQL.strip().split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')"))
        shared = jpeg(999)  # the same picture in several places: stored once
        for story in range(1, stories + 1):
            images = []
            for i in range(images_per_story):
                data = shared if i == 0 else jpeg(story * 100 + i)
                text = b64(data)
                if i == 1:
                    text = base64.encodebytes(data).decode()  # line breaks
                images.append({"data": text, "caption": f"page {i}"})
                fixture.good[("stories", str(story), f"images[{i}].data")] = hashlib.sha256(data).hexdigest()
            doc = {"title": f"Story {story}", "language": "en", "images": images}
            conn.execute(
                sa.text("INSERT INTO stories (id, user_id, data) VALUES (:id, :u, :d)"),
                {"id": story, "u": 1 + story % 2, "d": json.dumps(doc)},
            )
        # bad payloads in stories
        bad_story = {
            "title": "bad",
            "images": [
                {"data": "this is not base64!!"},
                {"data": b64(PDF)},
                {"data": b64(jpeg(5))[:-40]},
                {"data": b64(bomb_png())},
                {"data": b64(jpeg(6))},
            ],
        }
        pk = stories + 1
        conn.execute(
            sa.text("INSERT INTO stories (id, user_id, data) VALUES (:id, 1, :d)"),
            {"id": pk, "d": json.dumps(bad_story)},
        )
        fixture.bad += [
            ("stories", str(pk), "images[0].data", "corrupt_base64"),
            ("stories", str(pk), "images[1].data", "not_image"),
            ("stories", str(pk), "images[2].data", "truncated_image"),
            ("stories", str(pk), "images[3].data", "decompression_bomb"),
        ]
        fixture.good[("stories", str(pk), "images[4].data")] = hashlib.sha256(jpeg(6)).hexdigest()
        conn.execute(
            sa.text("INSERT INTO stories (id, user_id, data) VALUES (:id, 1, :d)"),
            {"id": pk + 1, "d": "{not json"},
        )
        fixture.bad.append(("stories", str(pk + 1), "", "unreadable_json"))
        conn.execute(sa.text("INSERT INTO stories (id, user_id, data) VALUES (:id, 1, NULL)"), {"id": pk + 2})

        # characters: data URIs (one URL-safe without padding), an empty one, an executable
        for cid, photo in enumerate(
            [
                "data:image/jpeg;base64," + b64(jpeg(11)),
                "data:image/png;base64," + base64.urlsafe_b64encode(png(12)).decode().rstrip("="),
                "data:image/jpeg;base64," + b64(shared),
            ],
            start=1,
        ):
            conn.execute(
                sa.text("INSERT INTO characters (id, user_id, name, photo) VALUES (:id, 2, 'c', :p)"),
                {"id": cid, "p": photo},
            )
            fixture.good[("characters", str(cid), "")] = hashlib.sha256(
                decode_blob_text(photo).data
            ).hexdigest()
        conn.execute(sa.text("INSERT INTO characters (id, user_id, name, photo) VALUES (4, 2, 'e', '')"))
        conn.execute(
            sa.text("INSERT INTO characters (id, user_id, name, photo) VALUES (5, 2, 'x', :p)"),
            {"p": "data:image/jpeg;base64," + b64(EXE)},
        )
        fixture.bad += [("characters", "4", "", "empty"), ("characters", "5", "", "executable")]

        # files: accept any -> PDF and ZIP migrate with their MIME; an executable does not
        for fid, (name, mime, data) in enumerate(
            [
                ("a.pdf", "application/pdf", PDF),
                ("b.zip", "application/zip", ZIP),
                ("c.jpg", "image/png", jpeg(21)),
            ],
            start=1,
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO files (id, user_id, filename, mime_type, data) VALUES (:id, 1, :n, :m, :d)"
                ),
                {"id": fid, "n": name, "m": mime, "d": b64(data)},
            )
            fixture.good[("files", str(fid), "")] = hashlib.sha256(data).hexdigest()
        conn.execute(
            sa.text(
                "INSERT INTO files (id, user_id, filename, mime_type, data) VALUES (4, 1, 'e.exe', 'x', :d)"
            ),
            {"d": b64(EXE)},
        )
        conn.execute(  # a PDF the app saved as an image: it would be served as one
            sa.text(
                "INSERT INTO files (id, user_id, filename, mime_type, data) "
                "VALUES (5, 1, 's.jpg', 'image/jpeg', :d)"
            ),
            {"d": b64(PDF)},
        )
        fixture.bad += [("files", "4", "", "executable"), ("files", "5", "", "not_image")]

        # story_jobs: JSONB with pages[*].image.data and a cover
        for jid in (1, 2):
            result = {
                "status": "done",
                "pages": [{"n": n, "image": {"data": b64(jpeg(jid * 10 + n))}} for n in range(2)],
                "cover": b64(png(jid)),
                "score": 0.25,
            }
            conn.execute(
                sa.text("INSERT INTO story_jobs (id, user_id, result) VALUES (:id, 2, CAST(:r AS jsonb))"),
                {"id": jid, "r": json.dumps(result)},
            )
            for n in range(2):
                fixture.good[("story_jobs", str(jid), f"pages[{n}].image.data")] = hashlib.sha256(
                    jpeg(jid * 10 + n)
                ).hexdigest()
            fixture.good[("story_jobs", str(jid), "cover")] = hashlib.sha256(png(jid)).hexdigest()
        conn.execute(
            sa.text("INSERT INTO story_jobs (id, user_id, result) VALUES (3, 2, CAST(:r AS jsonb))"),
            {"r": json.dumps({"status": "failed", "cover": b64(ZIP)})},
        )
        fixture.bad.append(("story_jobs", "3", "cover", "not_image"))
    return fixture


def sources() -> list[BlobSource]:
    return list(load_sources_config().sources)


def current_values(url: str, source: BlobSource) -> dict[tuple[str, str, str], object]:
    """(table, pk, path) -> value now in the row, for every configured blob place."""
    expr = f'"{source.column}"::text' if source.format == "jsonb" else f'"{source.column}"'
    out: dict[tuple[str, str, str], object] = {}
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            sa.text(f'SELECT "{source.primary_key}"::text, {expr} FROM {source.qualified_table}')
        )
        for pk, value in rows:
            if value is None:
                continue
            if source.format in ("base64", "data_uri"):
                out[(source.table, pk, "")] = value
                continue
            try:
                doc = json.loads(value)
            except ValueError:
                out[(source.table, pk, "")] = value
                continue
            for pattern in source.json_paths:
                for path, found in expand_json_path(doc, pattern):
                    out[(source.table, pk, path)] = found
    return out


def all_values(url: str) -> dict[tuple[str, str, str], object]:
    values: dict[tuple[str, str, str], object] = {}
    for source in sources():
        values.update(current_values(url, source))
    return values


def reference_key(value: object) -> str:
    assert is_reference(value), value
    assert isinstance(value, str)
    return value.removeprefix("media://")


def assert_fully_migrated(url: str, store: ObjectStore, fixture: LegacyFixture) -> None:
    """Every good blob is a reference to an object whose bytes hash to the original; bad ones untouched."""
    values = all_values(url)
    bad_places = {(t, pk, path) for t, pk, path, _ in fixture.bad}
    for place, sha in fixture.good.items():
        key = reference_key(values[place])
        assert hashlib.sha256(store.get_bytes(key)).hexdigest() == sha, place
        assert sha in key
    for place in bad_places:
        assert place in values and isinstance(values[place], str)
    with get_engine(url).connect() as conn:
        refs = conn.execute(
            sa.text(
                "SELECT r.source_table, r.source_pk, r.json_path, o.sha256, o.storage_key "
                "FROM media_catalog.object_references r "
                "JOIN media_catalog.stored_objects o ON o.id = r.object_id"
            )
        ).all()
        assert {(t, pk, p): sha for t, pk, p, sha, _ in refs} == fixture.good
        quarantine = conn.execute(
            sa.text("SELECT source_table, source_pk, json_path, reason_code FROM media_catalog.quarantine")
        ).all()
        assert sorted(tuple(q) for q in quarantine) == sorted(fixture.bad)
        distinct = conn.execute(sa.text("SELECT count(*) FROM media_catalog.stored_objects")).scalar()
    assert distinct == len(set(fixture.good.values()))
    assert len(list(store.list_objects("originals/"))) == distinct  # each content stored exactly once
