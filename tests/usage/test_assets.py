"""The usage assets through Dagster: WARN checks fire on data built to trigger them and stay quiet
otherwise; the cost reports land in Postgres and in object storage with a signed URL."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetCheckSeverity, DagsterInstance, materialize

from assets.usage import (
    BUDGET_CHECK,
    GROWTH_RATE_CHECK,
    OWNER_QUOTA_CHECK,
    daily_cost_report,
    monthly_cost_report,
    usage_snapshot,
)
from core.catalog.models import CATALOG_SCHEMA as C
from core.config import PROJECT_CONFIG_DIR, load_config
from core.objectstore.local import LocalObjectStore
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.usage import add_object, add_user

DAY = "2026-03-10"
MB = 1_000_000
GB = 1_000_000_000


@pytest.fixture
def resources(database_url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(
            backend="local", local_root=str(tmp_path / "objects"), signing_secret="test-secret"
        ),
    }


def _run(assets: list, partition_key: str, resources: dict[str, Any]) -> dict[str, Any]:
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, partition_key=partition_key, resources=resources, instance=instance)
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        metadata = {}
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            metadata[materialization.asset_key.to_user_string()] = materialization.metadata
        return {"checks": checks, "metadata": metadata}


def test_quota_check_warns_for_an_owner_above_80_percent(engine: sa.Engine, resources: dict) -> None:
    with engine.begin() as conn:
        add_user(conn, 1, "free")
        add_user(conn, 2, "paid")
        add_object(conn, 85 * MB, owners=["1", "2"])  # 85 % of free, 1.7 % of paid
    out = _run([usage_snapshot], DAY, resources)
    check = out["checks"][OWNER_QUOTA_CHECK]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["owners_over"].value == 1
    assert "free" in check.metadata["owners"].value and "paid" not in check.metadata["owners"].value


def test_quota_check_is_quiet_when_every_owner_is_below_80_percent(
    engine: sa.Engine, resources: dict
) -> None:
    with engine.begin() as conn:
        add_user(conn, 1, "free")
        add_object(conn, 80 * MB, owners=["1"])  # exactly 80 % is not above it
    out = _run([usage_snapshot], DAY, resources)
    assert out["checks"][OWNER_QUOTA_CHECK].passed
    assert out["metadata"]["usage/usage_snapshot"]["owner_count"].value == 1


def test_growth_check_warns_on_more_than_10_gb_in_one_hour(engine: sa.Engine, resources: dict) -> None:
    with engine.begin() as conn:
        for minute in (5, 25, 45):  # 12 GB stored within 14:00-15:00 on the day
            add_object(
                conn, 4 * GB, owners=["9"], created_at=dt.datetime(2026, 3, 10, 14, minute, tzinfo=dt.UTC)
            )
    out = _run([usage_snapshot], DAY, resources)
    check = out["checks"][GROWTH_RATE_CHECK]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["peak_hour_gb"].value == pytest.approx(12)


def test_growth_check_is_quiet_when_the_same_bytes_spread_over_the_day(
    engine: sa.Engine, resources: dict
) -> None:
    with engine.begin() as conn:
        for hour in (2, 9, 16):  # 12 GB over the day, 4 GB in any hour
            add_object(conn, 4 * GB, owners=["9"], created_at=dt.datetime(2026, 3, 10, hour, tzinfo=dt.UTC))
    out = _run([usage_snapshot], DAY, resources)
    assert out["checks"][GROWTH_RATE_CHECK].passed


def _pricing_with_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: float) -> None:
    raw = load_config("pricing")
    raw["budget_monthly_usd"] = budget
    folder = tmp_path / "config"
    shutil.copytree(PROJECT_CONFIG_DIR, folder)  # MEDIA_CONFIG_DIR must hold every file
    (folder / "pricing.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(folder))


def test_budget_check_warns_when_the_monthly_cost_is_above_budget(
    engine: sa.Engine, resources: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pricing_with_budget(tmp_path, monkeypatch, budget=1.0)
    with engine.begin() as conn:
        add_object(conn, 200 * GB, owners=["1"])  # 200 GB on R2: (200 - 10) x $0.015 = $2.85/month
    out = _run([usage_snapshot, daily_cost_report], DAY, resources)
    check = out["checks"][BUDGET_CHECK]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["monthly_cost_usd"].value == pytest.approx(190 * 0.015, rel=1e-3)


def test_budget_check_is_quiet_within_budget_and_the_report_is_published(
    engine: sa.Engine, resources: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pricing_with_budget(tmp_path, monkeypatch, budget=5.0)
    with engine.begin() as conn:
        add_object(conn, 200 * GB, owners=["1"])
        conn.execute(sa.text("INSERT INTO public.files (id, user_id, data) VALUES (1, 1, repeat('A', 4000))"))
    out = _run([usage_snapshot, daily_cost_report], DAY, resources)
    assert out["checks"][BUDGET_CHECK].passed
    meta = out["metadata"]["usage/daily_costs"]
    assert meta["now_monthly_usd"].value == pytest.approx(190 * 0.015 + 4000 / GB * 0.15, abs=0.005)
    assert meta["chart"].value.startswith("![cost chart](data:image/png;base64,")

    store = LocalObjectStore(Path(resources["object_store"].local_root), signing_secret="test-secret")
    page = store.get_bytes(meta["report_key"].value).decode()
    assert "base64 in Postgres" in page and "Storage costs" in page
    assert meta["report_url"].value.startswith("http")
    for name in ("chart.png", "providers.csv", "savings.csv", "projections.csv", "prices.csv"):
        assert store.exists(f"reports/cost/day/{DAY}/{name}")
    for name in ("providers", "savings", "projections", "prices"):
        key = f"reports/cost/day/{DAY}/{name}.parquet"
        assert key in meta["parquet_keys"].value
        parquet = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
        csv = pd.read_csv(io.BytesIO(store.get_bytes(key.replace(".parquet", ".csv"))))
        assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv)
    # metadata is rounded like the report: money to cents (or 2 significant figures), % to 1 decimal
    assert meta["saving_pct"].value == round(meta["saving_pct"].value, 1)
    assert meta["now_monthly_usd"].value == round(meta["now_monthly_usd"].value, 2)

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT provider, scenario, is_configured_provider FROM {C}.cost_reports"
                " WHERE period = 'day' AND period_start = :d"
            ),
            {"d": dt.date(2026, 3, 10)},
        ).all()
        causes = conn.execute(sa.text(f"SELECT cause FROM {C}.cost_savings")).scalars().all()
        projections = conn.execute(sa.text(f"SELECT count(*) FROM {C}.cost_projections")).scalar()
    assert len(rows) == 10  # 7 object storage providers now + 3 Postgres hosts for the base64 "before"
    assert [r[0] for r in rows if r[2]] == ["cloudflare_r2", "railway"]
    assert set(causes) == {"migration", "deduplication", "webp_avif_variants", "retention"}
    assert projections == 8


def test_monthly_report_averages_the_months_daily_snapshots(engine: sa.Engine, resources: dict) -> None:
    with engine.begin() as conn:
        add_object(conn, 100 * GB, owners=["1"], created_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    _run([usage_snapshot], "2026-03-02", resources)
    _run([usage_snapshot], "2026-03-05", resources)
    with engine.begin() as conn:
        add_object(conn, 200 * GB, owners=["1"], created_at=dt.datetime(2026, 3, 6, tzinfo=dt.UTC))
    _run([usage_snapshot], "2026-03-07", resources)
    _run([usage_snapshot], "2026-03-09", resources)
    out = _run([monthly_cost_report], "2026-03-01", resources)
    meta = out["metadata"]["usage/monthly_costs"]
    assert meta["snapshots_averaged"].value == 4
    assert meta["days_in_period"].value == 31
    # GB-months: the average of the four days, not the last day's 300 GB
    assert meta["object_storage_gb"].value == pytest.approx((100 + 100 + 300 + 300) / 4)
    assert meta["growth_gb"].value == pytest.approx(200)
    covered = meta["days_covered"].value
    assert "4 daily snapshots (2026-03-02 to 2026-03-09) of the month's 31 days" in covered
    assert "grew by 200.000 GB" in covered

    store = LocalObjectStore(Path(resources["object_store"].local_root), signing_secret="test-secret")
    page = store.get_bytes(meta["report_key"].value).decode()
    assert "Storage cost report, March 2026" in page and "4 daily snapshots" in page
