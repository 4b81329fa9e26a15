"""The analyst views (migration 0006_analyst_views) answer the README's example queries from the tables the
usage snapshot and the cost report fill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA as C
from core.sources import load_sources_config
from core.usage.costs import Coverage, UsageFigures, compute_cost_report
from core.usage.pricing import load_price_table
from core.usage.quotas import load_quota_config
from core.usage.report import write_cost_tables
from core.usage.snapshot import load_summaries, take_usage_snapshot
from tests.support.usage import add_object, add_user, add_variant

DAY = dt.date(2026, 3, 10)
MB = 1_000_000
GB = 1_000_000_000


@pytest.fixture
def reported(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        add_user(conn, 1, "free")
        add_user(conn, 2, "paid")
        first, _ = add_object(conn, 90 * MB, owners=["1"])
        add_object(conn, 2 * GB, owners=["2"], kind="document")
        add_variant(conn, first, "thumb_150", 1 * MB)
        conn.execute(sa.text("INSERT INTO public.files (id, user_id, data) VALUES (1, 2, repeat('A', 4000))"))
        take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
        summaries = load_summaries(conn, DAY, DAY)
        report = compute_cost_report(
            UsageFigures.from_summaries(summaries),
            load_price_table(),
            "day",
            DAY,
            Coverage.of(summaries, DAY, DAY),
        )
        write_cost_tables(conn, report)
    return engine


def _rows(engine: sa.Engine, sql: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]


def test_daily_cost_view_gives_the_run_rate_per_month_and_per_day(reported: sa.Engine) -> None:
    rows = _rows(
        reported,
        f"SELECT day, scenario, provider, stored_gb, monthly_cost_usd, daily_cost_usd, price_dated"
        f" FROM {C}.daily_cost WHERE configured ORDER BY scenario",
    )
    assert [(r["scenario"], r["provider"]) for r in rows] == [
        ("base64 in Postgres", "railway"),
        ("object storage now", "cloudflare_r2"),
    ]
    now = rows[1]
    assert now["day"] == DAY and now["price_dated"] == dt.date(2024, 11, 1)
    assert float(now["stored_gb"]) == pytest.approx(2.091, abs=0.001)
    assert float(now["daily_cost_usd"]) == pytest.approx(float(now["monthly_cost_usd"]) / 31, abs=1e-6)


def test_usage_by_owner_view_splits_locations_and_shows_the_quota(reported: sa.Engine) -> None:
    rows = {
        r["owner"]: r
        for r in _rows(reported, f"SELECT * FROM {C}.usage_by_owner WHERE day = '{DAY}' ORDER BY owner")
    }
    one = rows["1"]
    assert one["tier"] == "free" and float(one["originals_gb"]) == pytest.approx(0.09)
    assert float(one["variants_gb"]) == pytest.approx(0.001)
    assert float(one["quota_gb"]) == pytest.approx(0.1) and float(one["quota_used_pct"]) == pytest.approx(
        91.0
    )
    assert float(rows["2"]["database_gb"]) == pytest.approx(0.000004)


def test_usage_by_kind_and_by_provider_views(reported: sa.Engine) -> None:
    kinds = {
        (r["location"], r["kind"]): r
        for r in _rows(reported, f"SELECT * FROM {C}.usage_by_kind WHERE day = '{DAY}'")
    }
    assert float(kinds[("originals", "document")]["gb"]) == pytest.approx(2.0)
    assert kinds[("originals", "image")]["objects"] == 1
    assert ("variants", "thumb_150") in kinds and ("database", "files") in kinds
    providers = {
        (r["provider"], r["location"], r["kind"]): r
        for r in _rows(reported, f"SELECT * FROM {C}.usage_by_provider")
    }
    assert float(providers[("local", "originals", "document")]["gb"]) == pytest.approx(2.0)
    assert providers[("local", "variants", "thumb_150")]["objects"] == 1
    assert float(providers[("postgres", "database", "base64 in rows")]["gb"]) == pytest.approx(0.000004)


def test_the_readme_example_queries_run_against_the_views(reported: sa.Engine) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### SQL views for BI tools") :]
    block = section[
        section.index("```sql") + len("```sql") : section.index("```", section.index("```sql") + 6)
    ]
    statements = [s.strip() for s in block.split(";") if s.strip()]
    assert len(statements) == 4
    with reported.connect() as conn:
        results = [conn.execute(sa.text(s)).all() for s in statements]
    assert results[1] and results[1][0][0] == "1"  # the free owner at 91 % of quota comes first
    assert results[3]  # bytes per provider
