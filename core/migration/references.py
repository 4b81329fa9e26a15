"""What a migrated value becomes in the source row, and how a later pass recognises it.

Every format is rewritten with one plain string, in place of the base64 (the rest of a JSON document is
kept as it was):

- `reference: key`        -> `originals/ab/cd/<sha256>.<ext>` (the content-addressed storage key)
- `reference: url`        -> `media://originals/ab/cd/<sha256>.<ext>`
- `reference: catalog_id` -> `catalog:<media_catalog.stored_objects.id>`

None of these can be valid base64 (they hold ':' or '.'), so a value is either a reference or data.
The key and URL forms carry the SHA-256 and extension, so the app can verify what it reads.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from core.catalog.models import ObjectReference, QuarantineRecord
from core.sources import BlobSource

REFERENCE_PATTERN = re.compile(
    r"(?:media://)?originals/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,8}|catalog:[0-9]+"
)
URL_SCHEME = "media://"
CATALOG_PREFIX = "catalog:"


def make_reference(kind: str, storage_key: str, object_id: int) -> str:
    if kind == "key":
        return storage_key
    if kind == "url":
        return f"{URL_SCHEME}{storage_key}"
    if kind == "catalog_id":
        return f"{CATALOG_PREFIX}{object_id}"
    raise ValueError(f"unknown reference kind {kind!r}")


def is_reference(value: Any) -> bool:
    """True for a value a previous migration wrote (never re-uploaded, never counted as base64)."""
    return isinstance(value, str) and len(value) < 200 and REFERENCE_PATTERN.fullmatch(value) is not None


def references_of(source: BlobSource) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the catalog references this source made: its whole identity, not just its table
    (two sources on one table, or same-named tables in two schemas, are different places)."""
    return [getattr(ObjectReference, column) == value for column, value in source.identity.items()]


def quarantine_of(source: BlobSource) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the quarantine records of this source (same identity as references_of)."""
    return [getattr(QuarantineRecord, column) == value for column, value in source.identity.items()]
