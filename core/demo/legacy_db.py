"""A seeded generator of the MagicalStory legacy database: base64 media stuffed into PostgreSQL rows.

The real database had few rows and huge ones (files 967 MB in 7 rows, stories 918 MB in 18, story_jobs
824 MB in 46, characters 116 MB in 6). This module rebuilds that shape with synthetic photos so the
migration can be developed, tested and benchmarked without real user data, and it plants every kind of
payload the migration must survive (odd encodings, corrupt and hostile blobs, duplicates) at known
positions, listed in the returned summary so tests can assert each one is handled.

Determinism: one `numpy.random.Generator` seeded from `seed` drives everything (consumed by a single
worker thread) and rows are written in a fixed order into freshly recreated tables, so the same seed and
scale give byte-identical contents.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import queue
import re
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from core.demo.images import (
    decompression_bomb_png,
    encode_image,
    exif_rotated_jpeg,
    random_size,
    synthetic_photo,
)

#: Every timestamp is an offset from this instant, so retention logic sees the same ages on every run.
REFERENCE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_SEED = 20251209
TABLES: tuple[str, ...] = ("users", "stories", "characters", "files", "story_jobs")

BAD_KINDS: frozenset[str] = frozenset(
    {
        "corrupt_base64",
        "empty",
        "not_image_pdf",
        "not_image_zip",
        "truncated_image",
        "decompression_bomb",
        "executable",
    }
)
#: Valid payloads in an unusual wrapping: the migration must decode them, not quarantine them.
VARIANT_KINDS: frozenset[str] = frozenset(
    {"mime_linebreaks", "urlsafe", "unpadded", "data_uri", "mime_mismatch", "exif_orientation"}
)

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BadPayload:
    """A deliberately broken or hostile payload the migration must quarantine, not upload."""

    table: str
    pk: int
    json_path: str  # "images[3].data", "pages[0].image.data", "cover"; "" = the whole column
    kind: str


@dataclass(frozen=True)
class PayloadVariant:
    """A valid payload in an unusual encoding or wrapping the migration must still decode."""

    table: str
    pk: int
    json_path: str
    kind: str


@dataclass(frozen=True)
class BlobRef:
    """Where one copy of a blob lives."""

    table: str
    pk: int
    json_path: str
    user_id: int


@dataclass(frozen=True)
class DuplicateBlob:
    """Byte-identical decoded content stored more than once (the encodings may differ)."""

    sha256: str
    refs: tuple[BlobRef, ...]

    @property
    def cross_user(self) -> bool:
        return len({ref.user_id for ref in self.refs}) > 1


@dataclass
class TableStats:
    """What one legacy table ended up holding."""

    rows: int = 0
    blobs: int = 0  # base64 payload slots, bad ones included
    payload_chars: int = 0  # characters of base64 text written (what the app stored)
    bytes_in_table: int = 0  # pg_total_relation_size: heap + TOAST + indexes


@dataclass
class LegacyDatabaseSummary:
    """Everything a migration test needs to know about a generated database, without rescanning it."""

    schema: str
    seed: int
    scale: float
    reference_time: datetime
    tables: dict[str, TableStats]
    bad_payloads: list[BadPayload]
    duplicates: list[DuplicateBlob]
    variants: list[PayloadVariant]
    #: user ids by retention population: "active", "warning" (12-13 months idle), "inactive" (> 13
    #: months idle) and "deleted" (soft-deleted accounts).
    user_populations: dict[str, list[int]]
    distinct_blobs: int  # distinct decodable payloads by SHA-256 of their decoded bytes
    total_blobs: int
    elapsed_seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(stats.bytes_in_table for stats in self.tables.values())


# --------------------------------------------------------------------------------------------------
# Sizing: how many rows of which size a scale means.


@dataclass(frozen=True)
class _Plan:
    users: int
    stories: int
    characters: int
    files: int
    story_jobs: int
    images_per_story: tuple[int, int]
    pages_per_job: tuple[int, int]
    pages_per_book: tuple[int, int]
    max_mp: float


#: Mean base64 characters per blob at the full 0.3-4 MP size range (measured on this generator):
#: generated pages (half PNG), book pages (2-4 MP JPEG q90-96) and character photos.
_EST_PAGE = 2_300_000
_EST_BOOK_PAGE = 1_150_000
_EST_CHARACTER = 1_000_000
#: Bytes per unit of scale, split like the seed database (files, stories, story_jobs, characters).
_BYTES_PER_SCALE = 150_000_000
_SHARE = {"files": 967 / 2825, "stories": 918 / 2825, "story_jobs": 824 / 2825, "characters": 116 / 2825}
#: The seed database (2.8 GB) is about this many times scale 1; its row counts are matched there.
_SEED_SCALE = 19.0
_SEED_ROWS = {"files": 7, "stories": 18, "story_jobs": 46, "characters": 6}
#: Rows that carry planted payloads; every scale has at least these so every kind always appears.
_MIN_ROWS = {"users": 12, "stories": 6, "characters": 6, "files": 11, "story_jobs": 8}
_SPECIAL_FILES = 9  # files rows 0..8 are fixed small payloads; bulk files follow


def _mean_mp(max_mp: float) -> float:
    """Mean of the log-uniform 0.3..max_mp pixel-count distribution `random_size` draws from."""
    low = min(0.3, max_mp)
    return low if max_mp <= low else (max_mp - low) / math.log(max_mp / low)


def _shape(
    share: float, seed_rows: float, min_rows: int, blob: float, fewest: int, most: int
) -> tuple[int, tuple[int, int]]:
    """Rows and blobs per row that spend `share` bytes the seed's way: few rows, many blobs each.

    Rows follow the seed's counts (sub-linearly in scale); each row then takes as many blobs as the
    budget allows, up to `most`, past which more rows are added instead.
    """
    rows = max(min_rows, round(seed_rows), math.ceil(share / (most * blob)))
    per_row = share / rows / blob
    low = min(most - 1, max(fewest, math.floor(per_row * 0.85)))
    high = min(most, max(low + 1, math.ceil(per_row * 1.15)))
    return rows, (low, high)


def _is_upload(index: int) -> bool:
    """Bulk files rows (after the planted ones) are books, except every fourth: a photo upload."""
    return index >= _SPECIAL_FILES and (index - _SPECIAL_FILES) % 4 == 0


def _bulk_rows(books: int) -> int:
    """Bulk files rows needed to hold `books` books between the interleaved uploads."""
    rows = books
    while sum(not _is_upload(_SPECIAL_FILES + k) for k in range(rows)) < books:
        rows += 1
    return rows


def _plan(scale: float) -> _Plan:
    """Row counts and per-row sizes for `scale`: 1.0 is ~150 MB, ~19 has the seed's rows and sizes."""
    max_mp = 0.3 + 3.7 * min(1.0, scale)  # below scale 1 images shrink too, keeping tests fast
    size = _mean_mp(max_mp) / _mean_mp(4.0)
    budget = _BYTES_PER_SCALE * scale
    ratio = (scale / _SEED_SCALE) ** 0.6

    def shape(table: str, blob: float, fewest: int, most: int) -> tuple[int, tuple[int, int]]:
        min_rows = _MIN_ROWS[table] - (_SPECIAL_FILES if table == "files" else 0)
        seed_rows = _SEED_ROWS[table] * ratio
        return _shape(budget * _SHARE[table], seed_rows, min_rows, blob * size, fewest, most)

    stories, images = shape("stories", _EST_PAGE, 4, 20)  # images[0..3] carry planted payloads
    jobs, blobs = shape("story_jobs", _EST_PAGE, 3, 13)  # pages + the cover; pages[0..1] planted
    books, pages = shape("files", _EST_BOOK_PAGE, 4, 40)  # a printed book: up to 40 pages
    # One photo per character: rows are the only way to spend the budget.
    characters = max(_MIN_ROWS["characters"], round(budget * _SHARE["characters"] / (_EST_CHARACTER * size)))
    return _Plan(
        users=max(_MIN_ROWS["users"], round(12 * math.sqrt(scale))),
        stories=stories,
        characters=characters,
        files=_SPECIAL_FILES + _bulk_rows(books),
        story_jobs=jobs,
        images_per_story=images,
        pages_per_job=(blobs[0] - 1, blobs[1] - 1),
        pages_per_book=pages,
        max_mp=max_mp,
    )


# --------------------------------------------------------------------------------------------------
# Payload builders.


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _mime_b64(raw: bytes, newline: str = "\n") -> str:
    """Base64 wrapped at 76 characters, as MIME encoders (and some JS libraries) emit it."""
    text = _b64(raw)
    return newline.join(text[i : i + 76] for i in range(0, len(text), 76))


def _corrupt_b64(raw: bytes) -> str:
    """Valid base64 with 7 characters in the middle replaced by 6 non-alphabet ones.

    Strict decoding rejects it, and a lenient decoder that drops the junk is left misaligned, so no
    decoder can quietly recover the original image.
    """
    text = _b64(raw)
    middle = len(text) // 2
    return text[:middle] + "!*%$@#" + text[middle + 7 :]


def _data_uri(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64,{_b64(raw)}"


def _pdf(objects: list[bytes]) -> bytes:
    """Assemble numbered PDF objects (object 1 must be the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def text_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF (Helvetica text), written by hand: an order receipt or similar."""
    ops = [b"BT /F1 14 Tf 72 770 Td 18 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"(" + escaped.encode("latin-1", "replace") + b") Tj T*")
    ops.append(b"ET")
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            _stream(b"", b"\n".join(ops)),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def book_pdf(pages: list[tuple[bytes, int, int]]) -> bytes:
    """A print-ready story book: one full-bleed JPEG (DCTDecode, embedded as is) per page."""
    count = len(pages)
    kids = b" ".join(b"%d 0 R" % (3 + 3 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
    ]
    for i, (jpeg, width, height) in enumerate(pages):
        page_w, page_h = 595, max(1, round(595 * height / width))
        page, content, image = 3 + 3 * i, 4 + 3 * i, 5 + 3 * i
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (page_w, page_h)
            + b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>" % (image, content)
        )
        assert len(objects) == page
        objects.append(_stream(b"", b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (page_w, page_h)))
        objects.append(
            _stream(
                b"/Type /XObject /Subtype /Image /Width %d /Height %d " % (width, height)
                + b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode",
                jpeg,
            )
        )
    return _pdf(objects)


_ZIP_TIME = (2025, 6, 1, 12, 0, 0)


def export_zip(files: dict[str, bytes]) -> bytes:
    """A ZIP archive with fixed timestamps (so it is byte-identical across runs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".jpg") else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def fake_executable(rng: np.random.Generator, size: int = 4096) -> bytes:
    """Bytes that look like a Windows PE file (MZ header, DOS stub, PE signature) and are inert junk."""
    header = bytearray(0x80)
    header[0:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, 0x80)  # e_lfanew: where the PE header starts
    stub = (
        b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
        b"This program cannot be run in DOS mode.\r\r\n$"
    )
    header[0x40 : 0x40 + len(stub)] = stub
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, 3, 0x5F5E100, 0, 0, 0xF0, 0x22)
    body = bytes(header) + coff
    return body + rng.bytes(max(0, size - len(body)))


# --------------------------------------------------------------------------------------------------
# Text and time helpers.

_FIRST = ("Ava", "Noah", "Mia", "Liam", "Emma", "Lukas", "Sofia", "Elias", "Lea", "Jonas", "Nina", "Ben")
_LAST = ("Meier", "Smith", "Rossi", "Keller", "Dubois", "Novak", "Berg", "Costa", "Weber", "Lund")
_ADJ = ("brave", "sleepy", "tiny", "golden", "curious", "silver", "secret", "giggling", "gentle", "wild")
_NOUN = ("dragon", "fox", "lighthouse", "garden", "rocket", "owl", "forest", "castle", "whale", "robot")
_PLACE = ("the moon", "a snowy hill", "the old harbour", "grandma's attic", "a candy island", "the clouds")
_STYLES = ("watercolor", "pixar-3d", "pencil-sketch", "comic", "anime", "storybook")
_LANGS = ("en", "en", "en", "de", "fr", "es")


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _title(rng: np.random.Generator) -> str:
    return f"The {_pick(rng, _ADJ).title()} {_pick(rng, _NOUN).title()} and {_pick(rng, _PLACE)}"


def _caption(rng: np.random.Generator, page: int) -> str:
    return f"Page {page}: the {_pick(rng, _ADJ)} {_pick(rng, _NOUN)} visits {_pick(rng, _PLACE)}."


def _ago(days: float) -> datetime:
    return REFERENCE_TIME - timedelta(seconds=round(days * 86_400))


def _between(rng: np.random.Generator, start: datetime, end: datetime) -> datetime:
    span = max(0, int((end - start).total_seconds()))
    return start + timedelta(seconds=int(rng.integers(0, span + 1)))


# --------------------------------------------------------------------------------------------------
# Generation.


@dataclass
class _User:
    id: int
    population: str
    created_at: datetime
    last_login_at: datetime


@dataclass
class _Row:
    """One row ready to insert, plus what it plants (json paths are relative to the payload column)."""

    params: dict[str, Any]
    user_id: int
    blobs: int = 0
    payload_chars: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    variants: list[tuple[str, str]] = field(default_factory=list)
    shared: list[tuple[str, str]] = field(default_factory=list)  # (json_path, duplicate group)


# Retention populations cycle through this pattern: every population exists at the minimum user count.
_POPULATION_CYCLE = ("active", "active", "warning", "inactive", "deleted", "active", "inactive", "warning")

#: Fixed story / job rows (0-based) that carry planted payloads and duplicates.
_DUP_CROSS_USER = "cross_user"  # stories[0].images[1] (user 0) == stories[1].images[0] (user 1) == a photo
_DUP_WITHIN_USER = "within_user"  # stories[0].images[0] == story_jobs[3].cover (both user 0)


class _Generator:
    """Produces rows table by table from one seeded stream; keeps only small per-row bookkeeping."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.plan = _plan(scale)
        self.users: list[_User] = []
        self.stories: list[tuple[int, datetime]] = []  # (user_id, created_at) by row index
        self.shared_raw: dict[str, bytes] = {}  # the few blobs reused on purpose
        self.digests: set[bytes] = set()
        self.total_blobs = 0

    # -- images -------------------------------------------------------------------------------------

    def _size(self, max_mp: float | None = None, min_mp: float = 0.3) -> tuple[int, int]:
        """A random size between `min_mp` and the smaller of `max_mp` and the plan's ceiling."""
        high = self.plan.max_mp if max_mp is None else min(max_mp, self.plan.max_mp)
        return random_size(self.rng, min(min_mp, high), high)

    def photo_bytes(self, fmt: str | None = None, *, max_mp: float | None = None) -> tuple[bytes, str]:
        """A fresh synthetic photo encoded the way the app stored generated images; (bytes, MIME)."""
        if fmt is None:
            roll = self.rng.random()
            # Image models return PNG, so generated pages are mostly PNG (~3 MB of base64 in the seed).
            fmt = "PNG" if roll < 0.5 else "WEBP" if roll < 0.55 else "JPEG"
        width, height = self._size(max_mp)
        img = synthetic_photo(self.rng, width, height)
        quality = int(self.rng.integers(85, 96))  # canvas.toDataURL defaults to 0.92
        return encode_image(img, fmt, quality), f"image/{fmt.lower()}"

    def note(self, raw: bytes) -> None:
        """Count a decodable payload for the distinct-blob statistic."""
        self.total_blobs += 1
        self.digests.add(hashlib.sha256(raw).digest())

    # -- users --------------------------------------------------------------------------------------

    def user_rows(self) -> Iterator[_Row]:
        rng = self.rng
        for i in range(self.plan.users):
            population = _POPULATION_CYCLE[i % len(_POPULATION_CYCLE)]
            if population == "active":
                last_login = _ago(rng.uniform(0, 60))
            elif population == "warning":  # idle 12-13 months: the warning e-mail is due
                last_login = _ago(rng.uniform(372, 388))
            elif population == "inactive":  # idle more than 13 months: due for deletion
                last_login = _ago(rng.uniform(410, 800))
            else:
                last_login = _ago(rng.uniform(40, 300))
            created = last_login - timedelta(days=float(rng.uniform(30, 500)))
            created = created.replace(microsecond=0)
            deleted_at = _between(rng, last_login, _ago(1)) if population == "deleted" else None
            user_id = 1_000_000_000 + 7_919 * (i + 1)
            first, last = _FIRST[i % len(_FIRST)], _LAST[(i * 7) % len(_LAST)]
            tier = "paid" if i < 2 or rng.random() < 0.25 else "free"
            self.users.append(_User(user_id, population, created, last_login))
            yield _Row(
                {
                    "id": user_id,
                    "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                    "name": f"{first} {last}",
                    "tier": tier,
                    "created_at": created,
                    "last_login_at": last_login,
                    "deleted_at": deleted_at,
                },
                user_id,
            )

    def _owner(self, index: int) -> _User:
        """Rows 0-2 belong to users 0, 1, 2 (the planted duplicates need distinct owners); then two heavy
        users own half of everything, as in the seed database."""
        if index < 3:
            return self.users[index]
        if self.rng.random() < 0.5:
            return self.users[int(self.rng.integers(2))]
        return self.users[int(self.rng.integers(2, len(self.users)))]

    # -- stories ------------------------------------------------------------------------------------

    def story_rows(self) -> Iterator[_Row]:
        rng = self.rng
        for index in range(self.plan.stories):
            user = self._owner(index)
            created = _between(rng, user.created_at, user.last_login_at)
            updated = _between(rng, created, user.last_login_at)
            deleted_at: datetime | None = None
            if index == 3 or (index > 4 and rng.random() < 0.08):
                deleted_at = _ago(rng.uniform(45, 200))  # past the 30-day recovery window
            elif index == 4 or (index > 4 and rng.random() < 0.08):
                deleted_at = _ago(rng.uniform(2, 20))  # still recoverable
            lo, hi = self.plan.images_per_story
            count = int(rng.integers(lo, hi + 1))
            title = _title(rng)
            row = _Row({}, user.id)
            images: list[dict[str, str]] = []
            for position in range(count):
                data = self._story_image(index, position, row)
                images.append({"data": data, "caption": _caption(rng, position + 1)})
            document = {
                "title": title,
                "language": _pick(rng, _LANGS),
                "settings": {
                    "style": _pick(rng, _STYLES),
                    "ageGroup": _pick(rng, ("2-4", "4-6", "6-8", "8-10")),
                    "pages": count,
                    "model": _pick(rng, ("gemini-2.5-flash-image", "dall-e-3", "flux-1.1-pro")),
                },
                "images": images,
            }
            row.params = {
                "user_id": user.id,
                "title": title,
                "data": json.dumps(document, ensure_ascii=False, separators=(",", ":")),
                "created_at": created,
                "updated_at": updated,
                "deleted_at": deleted_at,
            }
            row.blobs = count
            self.stories.append((user.id, created))
            yield row

    def _story_image(self, story: int, position: int, row: _Row) -> str:
        """The `data` string of one story image; fixed positions carry planted payloads."""
        path = f"images[{position}].data"
        slot = (story, position)
        if slot == (0, 0):
            raw, _ = self.photo_bytes("JPEG")
            self.shared_raw[_DUP_WITHIN_USER] = raw
            row.shared.append((path, _DUP_WITHIN_USER))
        elif slot in ((0, 1), (1, 0)):
            raw = self.shared_raw.get(_DUP_CROSS_USER) or self.photo_bytes("JPEG")[0]
            if slot == (0, 1):
                self.shared_raw[_DUP_CROSS_USER] = raw
            row.shared.append((path, _DUP_CROSS_USER))
        elif slot == (0, 2):
            row.bad.append((path, "corrupt_base64"))
            return self._counted(row, _corrupt_b64(self.photo_bytes("JPEG")[0]))
        elif slot == (0, 3):
            row.variants.append((path, "mime_linebreaks"))
            return self._decodable(row, self.photo_bytes("JPEG")[0], _mime_b64)
        elif slot == (1, 1):
            row.bad.append((path, "not_image_zip"))
            return self._counted(row, _b64(self._zip()))
        elif slot == (1, 2):
            row.variants.append((path, "urlsafe"))
            return self._decodable(row, self.photo_bytes("PNG")[0], _urlsafe)
        elif slot == (2, 0):
            row.bad.append((path, "empty"))
            return ""
        elif slot == (2, 1):
            row.bad.append((path, "not_image_pdf"))
            return self._counted(row, _b64(self._receipt_pdf()))
        elif slot == (2, 2):
            row.variants.append((path, "unpadded"))
            return self._decodable(row, self._unpaddable_jpeg(), _unpadded)
        elif slot == (2, 3):
            row.variants.append((path, "data_uri"))
            raw, mime = self.photo_bytes("JPEG")
            return self._decodable(row, raw, lambda r: _data_uri(mime, r))
        else:
            raw, _ = self.photo_bytes()
        return self._decodable(row, raw, _b64)

    def _decodable(self, row: _Row, raw: bytes, encode: Callable[[bytes], str]) -> str:
        self.note(raw)
        return self._counted(row, encode(raw))

    @staticmethod
    def _counted(row: _Row, text: str) -> str:
        row.payload_chars += len(text)
        return text

    def _unpaddable_jpeg(self) -> bytes:
        """A JPEG whose length is not a multiple of 3, so its base64 really has padding to drop."""
        width, height = self._size(1.0)
        img = synthetic_photo(self.rng, width, height)
        for quality in range(90, 40, -1):
            raw = encode_image(img, "JPEG", quality)
            if len(raw) % 3:
                return raw
        raise AssertionError("no JPEG length avoided a multiple of 3")

    def _receipt_pdf(self) -> bytes:
        order = int(self.rng.integers(10_000, 99_999))
        return text_pdf([f"MagicalStory order #{order}", "Hardcover book, 24 pages", "Total: 39.90 EUR"])

    def _zip(self) -> bytes:
        small, _ = self.photo_bytes("JPEG", max_mp=0.3)
        story = json.dumps({"title": _title(self.rng), "pages": 1}).encode()
        return export_zip({"story.json": story, "page-1.jpg": small, "README.txt": b"MagicalStory export\n"})

    # -- characters ---------------------------------------------------------------------------------

    def character_rows(self) -> Iterator[_Row]:
        rng = self.rng
        for index in range(self.plan.characters):
            user = self._owner(index)
            created = _between(rng, user.created_at, user.last_login_at)
            row = _Row({}, user.id, blobs=1)
            if index == 1:
                row.bad.append(("", "empty"))
                photo = ""
            elif index == 2:
                row.bad.append(("", "decompression_bomb"))
                photo = self._counted(row, _data_uri("image/png", decompression_bomb_png()))
            elif index == 3:  # user 3 reuses the picture two other users put in their stories
                row.shared.append(("", _DUP_CROSS_USER))
                photo = self._decodable(
                    row, self.shared_raw[_DUP_CROSS_USER], lambda r: _data_uri("image/jpeg", r)
                )
            elif index == 4:  # a phone upload: EXIF says "rotate 90" and carries the GPS position
                row.variants.append(("", "exif_orientation"))
                width, height = self._size(2.0)
                raw = exif_rotated_jpeg(rng, width, height, 6)
                photo = self._decodable(row, raw, lambda r: _data_uri("image/jpeg", r))
            elif index == 5:
                row.bad.append(("", "executable"))
                photo = self._counted(row, _data_uri("image/jpeg", fake_executable(rng)))
            elif index == 0 or rng.random() < 0.25:  # a cut-out avatar: PNG with a soft alpha mask
                width, height = self._size(1.5)
                raw = encode_image(synthetic_photo(rng, width, height, alpha=True), "PNG")
                photo = self._decodable(row, raw, lambda r: _data_uri("image/png", r))
            else:
                raw, mime = self.photo_bytes("JPEG")  # an original phone photo, full size
                photo = self._decodable(row, raw, lambda r, m=mime: _data_uri(m, r))
            traits = {
                "age": int(rng.integers(3, 70)),
                "species": _pick(rng, ("human", "cat", "dog", "dragon", "robot")),
                "personality": [_pick(rng, _ADJ), _pick(rng, _ADJ)],
                "hairColor": _pick(rng, ("brown", "black", "blond", "red", "none")),
            }
            row.params = {
                "user_id": user.id,
                "name": _FIRST[(index * 5) % len(_FIRST)],
                "traits": json.dumps(traits),
                "photo": photo,
                "created_at": created,
                "deleted_at": _ago(rng.uniform(1, 90)) if index > 5 and rng.random() < 0.1 else None,
            }
            yield row

    # -- files --------------------------------------------------------------------------------------

    def file_rows(self) -> Iterator[_Row]:
        rng = self.rng
        for index in range(self.plan.files):
            user = self._owner(index)
            created = _between(rng, user.created_at, user.last_login_at)
            row = _Row({}, user.id, blobs=1)
            filename, mime, data = self._file_payload(index, row)
            row.params = {
                "user_id": user.id,
                "filename": filename,
                "mime_type": mime,
                "data": data,
                "created_at": created,
                "deleted_at": _ago(rng.uniform(1, 90))
                if index >= _SPECIAL_FILES and rng.random() < 0.1
                else None,
            }
            yield row

    def _file_payload(self, index: int, row: _Row) -> tuple[str, str, str]:
        """(filename, declared MIME, base64 data) of files row `index`; rows 0-8 are planted payloads."""
        rng = self.rng
        if index == 0:
            return "receipt.pdf", "application/pdf", self._decodable(row, self._receipt_pdf(), _b64)
        if index == 1:
            return "story-export.zip", "application/zip", self._decodable(row, self._zip(), _b64)
        if index == 2:
            row.bad.append(("", "not_image_pdf"))
            return "scan.jpg", "image/jpeg", self._counted(row, _b64(self._receipt_pdf()))
        if index == 3:
            row.bad.append(("", "not_image_zip"))
            return "photos.jpg", "image/jpeg", self._counted(row, _b64(self._zip()))
        if index == 4:
            row.bad.append(("", "executable"))
            return "avatar.png", "image/png", self._counted(row, _b64(fake_executable(rng)))
        if index == 5:
            row.bad.append(("", "truncated_image"))
            raw, _ = self.photo_bytes("JPEG", max_mp=1.5)
            return "holiday.jpg", "image/jpeg", self._counted(row, _b64(raw[: len(raw) * 6 // 10]))
        if index == 6:
            row.variants.append(("", "mime_linebreaks"))
            raw, _ = self.photo_bytes("JPEG")
            return "camera.jpg", "image/jpeg", self._decodable(row, raw, lambda r: _mime_b64(r, "\r\n"))
        if index == 7:
            row.bad.append(("", "corrupt_base64"))
            raw, _ = self.photo_bytes("JPEG", max_mp=1.0)
            return "beach.jpg", "image/jpeg", self._counted(row, _corrupt_b64(raw))
        if index == 8:
            row.variants.append(("", "mime_mismatch"))  # a PNG the app labelled as JPEG
            raw, _ = self.photo_bytes("PNG", max_mp=1.0)
            return "drawing.jpg", "image/jpeg", self._decodable(row, raw, _b64)
        if _is_upload(index):
            raw, mime = self.photo_bytes(_pick(rng, ("JPEG", "JPEG", "PNG")))
            extension = "png" if mime == "image/png" else "jpg"
            return f"upload-{index}.{extension}", mime, self._decodable(row, raw, _b64)
        lo, hi = self.plan.pages_per_book
        pages: list[tuple[bytes, int, int]] = []
        for _ in range(int(rng.integers(lo, hi + 1))):
            width, height = self._size(min_mp=2.0)  # print resolution
            img = synthetic_photo(rng, width, height)
            pages.append((encode_image(img, "JPEG", int(rng.integers(90, 97))), width, height))
        return f"book-{index}.pdf", "application/pdf", self._decodable(row, book_pdf(pages), _b64)

    # -- story jobs ---------------------------------------------------------------------------------

    def job_rows(self) -> Iterator[_Row]:
        rng = self.rng
        for index in range(self.plan.story_jobs):
            if index == 3:  # the job that produced stories[0]: its cover is that story's first image
                story: int | None = 0
            elif index == 6 or rng.random() < 0.15:
                story = None  # abandoned before a story row existed
            else:
                story = int(rng.integers(len(self.stories)))
            if story is None:
                user = self._owner(index)
                user_id = user.id
                created = _between(rng, user.created_at, user.last_login_at)
            else:
                user_id, story_created = self.stories[story]
                created = story_created - timedelta(seconds=int(rng.integers(60, 3_600)))
            status = "completed"
            if index == 5:
                status = "failed"
            elif index == 6:
                status = "queued"
            elif index > 6:
                roll = rng.random()
                status = "failed" if roll < 0.1 else "running" if roll < 0.15 else "completed"
            row = _Row({}, user_id)
            result: dict[str, Any] | None
            if status == "queued":
                result = None
            elif status == "failed":
                result = {"error": "image model timed out after 120 s", "pages": [], "retries": 3}
            else:
                result = self._job_result(index, row)
            row.params = {
                "user_id": user_id,
                "story_id": None if story is None else story + 1,
                "status": status,
                "result": None if result is None else json.dumps(result, separators=(",", ":")),
                "created_at": created,
            }
            yield row

    def _job_result(self, job: int, row: _Row) -> dict[str, Any]:
        rng = self.rng
        lo, hi = self.plan.pages_per_job
        pages: list[dict[str, Any]] = []
        for position in range(int(rng.integers(lo, hi + 1))):
            path = f"pages[{position}].image.data"
            slot = (job, position)
            mime = "image/png"
            if slot == (0, 1):
                row.bad.append((path, "truncated_image"))
                raw, mime = self.photo_bytes("JPEG", max_mp=1.5)
                data = self._counted(row, _b64(raw[: len(raw) * 6 // 10]))
            elif slot == (1, 0):
                row.variants.append((path, "urlsafe"))
                raw, mime = self.photo_bytes("JPEG")
                data = self._decodable(row, raw, lambda r: _unpadded(r, urlsafe=True))
            elif slot == (2, 0):
                row.bad.append((path, "executable"))
                data = self._counted(row, _b64(fake_executable(rng)))
            elif slot == (4, 0):
                row.bad.append((path, "decompression_bomb"))
                data = self._counted(row, _b64(decompression_bomb_png()))
            else:
                raw, mime = self.photo_bytes()
                data = self._decodable(row, raw, _b64)
            pages.append(
                {
                    "page": position + 1,
                    "text": _caption(rng, position + 1),
                    "image": {"data": data, "mime": mime},
                }
            )
        if job == 1:
            row.bad.append(("cover", "corrupt_base64"))
            cover = self._counted(row, _corrupt_b64(self.photo_bytes("JPEG")[0]))
        elif job == 3:
            row.shared.append(("cover", _DUP_WITHIN_USER))
            cover = self._decodable(row, self.shared_raw[_DUP_WITHIN_USER], _b64)
        elif job == 4:
            row.bad.append(("cover", "empty"))
            cover = ""
        else:
            cover = self._decodable(row, self.photo_bytes("JPEG")[0], _b64)
        row.blobs = len(pages) + 1
        return {
            "pages": pages,
            "cover": cover,
            "model": _pick(rng, ("gemini-2.5-flash-image", "dall-e-3")),
            "durationMs": int(rng.integers(20_000, 400_000)),
        }


def _urlsafe(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _unpadded(raw: bytes, *, urlsafe: bool = False) -> str:
    return (_urlsafe(raw) if urlsafe else _b64(raw)).rstrip("=")


# --------------------------------------------------------------------------------------------------
# Database writing.

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_DDL = (
    """CREATE TABLE {s}.users (
        id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT, tier TEXT CHECK (tier IN ('free', 'paid')),
        created_at TIMESTAMPTZ, last_login_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ NULL)""",
    """CREATE TABLE {s}.stories (
        id SERIAL PRIMARY KEY, user_id BIGINT, title TEXT, data TEXT,
        created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ NULL)""",
    """CREATE TABLE {s}.characters (
        id SERIAL PRIMARY KEY, user_id BIGINT, name TEXT, traits JSONB, photo TEXT,
        created_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ NULL)""",
    """CREATE TABLE {s}.files (
        id SERIAL PRIMARY KEY, user_id BIGINT, filename TEXT, mime_type TEXT, data TEXT,
        created_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ NULL)""",
    """CREATE TABLE {s}.story_jobs (
        id SERIAL PRIMARY KEY, user_id BIGINT, story_id INT NULL, status TEXT, result JSONB,
        created_at TIMESTAMPTZ)""",
)

_INSERT = {
    "users": "INSERT INTO {s}.users (id, email, name, tier, created_at, last_login_at, deleted_at) "
    "VALUES (:id, :email, :name, :tier, :created_at, :last_login_at, :deleted_at) RETURNING id",
    "stories": "INSERT INTO {s}.stories (user_id, title, data, created_at, updated_at, deleted_at) "
    "VALUES (:user_id, :title, :data, :created_at, :updated_at, :deleted_at) RETURNING id",
    "characters": "INSERT INTO {s}.characters (user_id, name, traits, photo, created_at, deleted_at) "
    "VALUES (:user_id, :name, CAST(:traits AS JSONB), :photo, :created_at, :deleted_at) RETURNING id",
    "files": "INSERT INTO {s}.files (user_id, filename, mime_type, data, created_at, deleted_at) "
    "VALUES (:user_id, :filename, :mime_type, :data, :created_at, :deleted_at) RETURNING id",
    "story_jobs": "INSERT INTO {s}.story_jobs (user_id, story_id, status, result, created_at) "
    "VALUES (:user_id, :story_id, :status, CAST(:result AS JSONB), :created_at) RETURNING id",
}

#: A transaction is committed after this many payload characters (or rows), keeping WAL and locks small.
_BATCH_CHARS = 64_000_000
_BATCH_ROWS = 50


def _recreate_tables(engine: sa.Engine, schema: str) -> None:
    quoted = f'"{schema}"'
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
        for table in reversed(TABLES):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {quoted}.{table} CASCADE"))
        for ddl in _DDL:
            conn.execute(sa.text(ddl.format(s=quoted)))


def _prefetched(rows: Iterator[_Row]) -> Iterator[_Row]:
    """Generate rows in a worker thread, one ahead, while the current one is sent to the server.

    Encoding (Pillow, zlib) and the socket writes release the GIL, so the two overlap on two cores. The
    one-slot queue keeps at most three rows alive: being sent, waiting, and being generated.
    """
    slot: queue.Queue[_Row | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: _Row | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for row in rows:
                if not offer(row):
                    return
        except BaseException as exc:  # handed to the consuming thread, which re-raises it
            offer(exc)
            return
        offer(None)

    worker = threading.Thread(target=work, name="legacy-db-rows", daemon=True)
    worker.start()
    try:
        while (item := slot.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _write_table(
    engine: sa.Engine,
    schema: str,
    table: str,
    rows: Iterator[_Row],
    total: int,
    stats: TableStats,
    summary: LegacyDatabaseSummary,
    shared_refs: dict[str, list[BlobRef]],
    progress: ProgressFn | None,
) -> None:
    """Insert rows as they are generated, committing in small batches: memory stays one row deep."""
    statement = sa.text(_INSERT[table].format(s=f'"{schema}"'))
    done = 0
    if progress:
        progress(table, 0, total)
    conn = engine.connect()
    try:
        transaction = conn.begin()
        batch_chars = batch_rows = 0
        for row in _prefetched(rows):
            pk = int(conn.execute(statement, row.params).scalar_one())
            stats.rows += 1
            stats.blobs += row.blobs
            stats.payload_chars += row.payload_chars
            summary.bad_payloads.extend(BadPayload(table, pk, path, kind) for path, kind in row.bad)
            summary.variants.extend(PayloadVariant(table, pk, path, kind) for path, kind in row.variants)
            for path, group in row.shared:
                shared_refs.setdefault(group, []).append(BlobRef(table, pk, path, row.user_id))
            batch_chars += row.payload_chars
            batch_rows += 1
            done += 1
            del row
            if batch_chars >= _BATCH_CHARS or batch_rows >= _BATCH_ROWS:
                transaction.commit()
                transaction = conn.begin()
                batch_chars = batch_rows = 0
            if progress:
                progress(table, done, total)
        transaction.commit()
    finally:
        conn.close()


def generate_legacy_database(
    database_url: str,
    *,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    schema: str = "public",
    progress: ProgressFn | None = None,
) -> LegacyDatabaseSummary:
    """(Re)create the five legacy tables in `schema` and fill them; same seed + scale = same bytes.

    scale 1.0 is ~150 MB of tables (the quick start); scale 20 passes 2 GB for benchmarks. Rows are
    generated and inserted one at a time, so memory does not grow with scale.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    if not _IDENTIFIER.match(schema):
        raise ValueError(f"not a plain SQL identifier: {schema!r}")
    started = time.perf_counter()
    generator = _Generator(seed, scale)
    plan = generator.plan
    summary = LegacyDatabaseSummary(
        schema=schema,
        seed=seed,
        scale=scale,
        reference_time=REFERENCE_TIME,
        tables={table: TableStats() for table in TABLES},
        bad_payloads=[],
        duplicates=[],
        variants=[],
        user_populations={},
        distinct_blobs=0,
        total_blobs=0,
    )
    shared_refs: dict[str, list[BlobRef]] = {}
    engine = sa.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        _recreate_tables(engine, schema)
        producers: list[tuple[str, Callable[[], Iterator[_Row]], int]] = [
            ("users", generator.user_rows, plan.users),
            ("stories", generator.story_rows, plan.stories),
            ("characters", generator.character_rows, plan.characters),
            ("files", generator.file_rows, plan.files),
            ("story_jobs", generator.job_rows, plan.story_jobs),
        ]
        for table, rows, total in producers:
            _write_table(
                engine, schema, table, rows(), total, summary.tables[table], summary, shared_refs, progress
            )
        with engine.connect() as conn:
            for table in TABLES:
                size = conn.execute(
                    sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                    {"t": f'"{schema}".{table}'},
                ).scalar_one()
                summary.tables[table].bytes_in_table = int(size)
    finally:
        engine.dispose()
    for group in (_DUP_CROSS_USER, _DUP_WITHIN_USER):
        digest = hashlib.sha256(generator.shared_raw[group]).hexdigest()
        summary.duplicates.append(DuplicateBlob(digest, tuple(shared_refs[group])))
    for user in generator.users:
        summary.user_populations.setdefault(user.population, []).append(user.id)
    summary.distinct_blobs = len(generator.digests)
    summary.total_blobs = generator.total_blobs
    summary.elapsed_seconds = time.perf_counter() - started
    return summary


def main(argv: list[str] | None = None) -> None:
    """`python -m core.demo.legacy_db URL --scale 20`: fill a database by hand (benchmarks)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("database_url")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--schema", default="public")
    args = parser.parse_args(argv)

    def report(table: str, done: int, total: int) -> None:
        print(f"\r{table:<11} {done:>5}/{total}", end="\n" if done == total else "", flush=True)

    summary = generate_legacy_database(
        args.database_url, scale=args.scale, seed=args.seed, schema=args.schema, progress=report
    )
    for table, stats in summary.tables.items():
        print(
            f"{table:<11} rows={stats.rows:<6} blobs={stats.blobs:<6} "
            f"size={stats.bytes_in_table / 1e6:,.1f} MB"
        )
    print(
        f"total {summary.total_bytes / 1e6:,.1f} MB in {summary.elapsed_seconds:.1f} s; "
        f"{summary.distinct_blobs}/{summary.total_blobs} distinct blobs; "
        f"{len(summary.bad_payloads)} bad payloads"
    )


if __name__ == "__main__":
    main()
