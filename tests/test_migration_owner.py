"""The migration keeps owner ids exact: an int owner is its str, a row without one is never filed under
"None" (core.migration.engine's `no_owner`), one that cannot be kept exactly is refused (`invalid_owner`)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import get_engine
from core.catalog.models import ObjectReference, QuarantineRecord
from core.migration.engine import MigrationSettings, migrate_source
from core.objectstore.local import LocalObjectStore
from tests.support.migration import b64, create_legacy_tables, jpeg, sources


def test_a_row_with_a_null_owner_is_quarantined_and_an_int_owner_is_kept_as_its_str(
    database_url: str, tmp_path: Path
) -> None:
    create_legacy_tables(database_url, stories=1)
    engine = get_engine(database_url)
    photo = "data:image/jpeg;base64," + b64(jpeg(4242))
    with engine.begin() as conn:
        ids = [
            conn.execute(
                sa.text(
                    "INSERT INTO characters (id, user_id, name, photo) "
                    "VALUES ((SELECT max(id) + 1 FROM characters), :u, 'x', :p) RETURNING id"
                ),
                {"u": owner, "p": photo},
            ).scalar_one()
            for owner in (None, 90001)
        ]
    source = next(s for s in sources() if s.name == "characters")
    store = LocalObjectStore(tmp_path / "objects", signing_secret="s")
    migrate_source(engine, store, source, settings=MigrationSettings(batch_rows=2, workers=1))
    with engine.connect() as conn:
        reasons = {
            r.source_pk: r.reason_code
            for r in conn.execute(
                sa.select(QuarantineRecord).where(QuarantineRecord.source_table == "characters")
            )
        }
        owners = {
            r.source_pk: r.owner_id
            for r in conn.execute(
                sa.select(ObjectReference).where(ObjectReference.source_table == "characters")
            )
        }
        kept = conn.execute(sa.text("SELECT photo FROM characters WHERE id = :i"), {"i": ids[0]}).scalar_one()
    assert reasons[str(ids[0])] == "no_owner"
    assert str(ids[0]) not in owners and "None" not in owners.values()
    assert kept == photo  # nothing rewritten for the refused row
    assert owners[str(ids[1])] == "90001"


def test_an_owner_id_that_cannot_be_kept_exactly_is_refused_not_cut(
    database_url: str, tmp_path: Path
) -> None:
    """Two owners sharing their first 255 characters used to become one; now such a row is refused."""
    from core.catalog.db import upgrade_catalog
    from core.sources import parse_source

    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    long_a, long_b, fine = "o" * 255 + "a", "o" * 255 + "b", "o" * 255
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE blobs (id integer PRIMARY KEY, owner text, b64 text)"))
        for i, owner in enumerate((long_a, long_b, fine), start=1):
            conn.execute(
                sa.text("INSERT INTO blobs VALUES (:i, :o, :b)"), {"i": i, "o": owner, "b": b64(jpeg(i))}
            )
    source = parse_source(
        {
            "name": "blobs",
            "table": "blobs",
            "primary_key": "id",
            "owner_column": "owner",
            "column": "b64",
            "format": "base64",
            "reference": "key",
        }
    )
    store = LocalObjectStore(tmp_path / "objects", signing_secret="s")
    migrate_source(engine, store, source, settings=MigrationSettings(batch_rows=3, workers=1))
    with engine.connect() as conn:
        reasons = {
            r.source_pk: r.reason_code
            for r in conn.execute(sa.select(QuarantineRecord).where(QuarantineRecord.source_name == "blobs"))
        }
        owners = {
            r.source_pk: r.owner_id
            for r in conn.execute(sa.select(ObjectReference).where(ObjectReference.source_name == "blobs"))
        }
    assert reasons == {"1": "invalid_owner", "2": "invalid_owner"}
    assert owners == {"3": fine}
