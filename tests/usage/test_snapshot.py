"""The usage snapshot SQL against a real Postgres: attribution, dedup, orphans, quotas, growth, reruns."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA as C
from core.sources import load_sources_config
from core.usage.quotas import load_quota_config
from core.usage.snapshot import take_usage_snapshot
from tests.support.usage import add_backup_copy, add_object, add_user, add_variant

DAY = dt.date(2026, 3, 10)
MB = 1_000_000


def _rows(conn: sa.Connection, day: dt.date = DAY) -> dict[tuple[str, str, str], tuple[int, int]]:
    result = conn.execute(
        sa.text(
            f"SELECT owner_id, kind, location, bytes, object_count FROM {C}.usage_snapshots"
            " WHERE snapshot_date = :d"
        ),
        {"d": day},
    )
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in result}


def test_snapshot_attributes_bytes_per_owner_kind_and_location(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        shared_id, shared_sha = add_object(conn, 10 * MB, owners=["1", "2"])  # deduplicated across owners
        add_object(conn, 4 * MB, owners=["1"], kind="document")
        add_object(conn, 3 * MB, owners=[])  # orphan: no reference at all
        add_object(conn, 2 * MB, owners=["2"], released=True)  # orphan: reference released
        add_object(conn, 7 * MB, owners=["1"], deleted_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        add_variant(conn, shared_id, "webp", 1 * MB)
        add_variant(conn, shared_id, "thumb_150", 100_000)
        add_backup_copy(conn, shared_sha, 10 * MB)
        conn.execute(
            sa.text("INSERT INTO public.files (id, user_id, data) VALUES (1, 1, 'QUJD'), (2, 1, 'RA==')")
        )
        conn.execute(
            sa.text("INSERT INTO public.stories (id, user_id, data) VALUES (1, 3, '{\"images\": []}')")
        )
        result = take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
        rows = _rows(conn)

    assert rows[("1", "image", "originals")] == (10 * MB, 1)
    assert rows[("2", "image", "originals")] == (10 * MB, 1)
    assert rows[("1", "document", "originals")] == (4 * MB, 1)
    assert rows[("1", "webp", "variants")] == (1 * MB, 1)
    assert rows[("2", "thumb_150", "variants")] == (100_000, 1)
    assert rows[("1", "image", "backups")] == (10 * MB, 1)
    assert rows[("1", "files", "database")] == (8, 2)  # octet_length of 'QUJD' + 'RA=='
    assert rows[("3", "stories", "database")] == (len('{"images": []}'), 1)

    s = result.summary
    assert s["original_bytes"] == 19 * MB and s["original_count"] == 4  # the deleted one is gone
    assert s["orphan_count"] == 2 and s["orphan_bytes"] == 5 * MB
    assert s["referenced_bytes"] == 24 * MB  # 10 + 10 (two references) + 4
    assert s["live_original_bytes"] == 14 * MB
    assert s["retention_deleted_bytes"] == 7 * MB
    assert s["variant_bytes"] == 1_100_000
    assert s["variant_delivery_saved_bytes"] == 9 * MB  # original 10 MB served as a 1 MB WebP
    assert s["backup_bytes"] == 10 * MB
    assert s["database_bytes"] == 8 + len('{"images": []}')
    assert s["database_relation_bytes"] > 0
    assert s["owner_count"] == 3
    assert [f["size_bytes"] for f in s["largest_files"][:2]] == [10 * MB, 4 * MB]
    assert s["largest_files"][0]["owner_id"] == "1"
    assert s["growth_bytes_per_day"] is None  # no earlier snapshot


def test_quota_uses_the_tier_column_and_falls_back_to_the_default_tier(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        add_user(conn, 1, "paid")
        add_user(conn, 2, None)
        add_user(conn, 3, "no-such-tier")
        add_object(conn, 90 * MB, owners=["1", "2", "3"])
        take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
        quotas = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                sa.text(f"SELECT owner_id, tier, quota_bytes, used_fraction FROM {C}.owner_quotas")
            )
        }
    assert quotas["1"] == ("paid", 5_000_000_000, pytest.approx(0.018))
    assert quotas["2"] == ("free", 100_000_000, pytest.approx(0.9))
    assert quotas["3"] == ("free", 100_000_000, pytest.approx(0.9))


def test_snapshot_is_point_in_time_and_reruns_replace_the_day(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        add_object(conn, 5 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC))
        add_object(conn, 6 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 11, 12, tzinfo=dt.UTC))
        first = take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
        again = take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
        count = conn.execute(sa.text(f"SELECT count(*) FROM {C}.usage_snapshots")).scalar()
        summaries = conn.execute(sa.text(f"SELECT count(*) FROM {C}.usage_summaries")).scalar()
    assert first.summary["original_bytes"] == 5 * MB  # the object created after the day is not counted
    assert again.summary == first.summary
    assert count == 1 and summaries == 1


def test_growth_is_measured_against_the_previous_snapshot(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        add_object(conn, 5 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        take_usage_snapshot(conn, dt.date(2026, 3, 6), load_sources_config(), load_quota_config())
        add_object(conn, 20 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 8, 5, tzinfo=dt.UTC))
        add_object(conn, 3 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 10, 5, 10, tzinfo=dt.UTC))
        add_object(conn, 4 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 10, 5, 50, tzinfo=dt.UTC))
        add_object(conn, 1 * MB, owners=["1"], created_at=dt.datetime(2026, 3, 10, 9, tzinfo=dt.UTC))
        result = take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
    assert result.previous_date == dt.date(2026, 3, 6)
    assert result.summary["growth_bytes_per_day"] == pytest.approx(28 * MB / 4)
    assert result.summary["peak_hour_bytes"] == 7 * MB  # 05:10 + 05:50 fall in the same hour
