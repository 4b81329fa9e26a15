"""The typed configuration layer: each file is one pydantic model with one default per setting; a wrong
type or an unknown key is a ConfigError naming the file and the field; prices have one source."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, materialize

from core.backups.settings import load_settings
from core.config import PROJECT_CONFIG_DIR, ConfigError, load_config
from core.imaging import load_variant_plan
from core.migration.engine import MigrationSettings
from core.migration.inventory import inventory_source
from core.migration.settings import MigrationConfig, load_migration_config, parse_migration_config
from core.usage.costs import USAGE_FIELDS, UsageFigures, compute_cost_report
from core.usage.formatting import round_money
from core.usage.pricing import load_price_table
from core.usage.quotas import load_quota_config
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.migration import create_legacy_tables, sources

LOADERS: dict[str, Callable[[], Any]] = {
    "migration": load_migration_config,
    "backups": load_settings,
    "variants": load_variant_plan,
    "quotas": load_quota_config,
}


def _config_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, edit: Callable[[dict], None]
) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(PROJECT_CONFIG_DIR, folder)
    raw = load_config(name)
    edit(raw)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(folder))
    return folder / f"{name}.yaml"


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        *parents, leaf = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value

    return edit


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("migration", "batch_mb", "lots"),
        ("migration", "workers", True),  # `workers: yes` is not 1
        ("migration", "declared_type_columns", ["files"]),
        ("backups", "database.compression_level", "6"),
        ("backups", "retention.presets.gfs.daily", 7.5),
        ("variants", "variants.thumb_300.quality", "high"),
        ("variants", "uploads.batch_size", [1]),
        ("quotas", "alerts.quota_warn_fraction", "most"),
        ("quotas", "largest_files", {"n": 20}),
    ],
)
def test_a_wrong_type_is_a_config_error_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, field: str, value: object
) -> None:
    path = _config_with(tmp_path, monkeypatch, name, _set(field, value))
    with pytest.raises(ConfigError) as caught:
        LOADERS[name]()
    assert str(path) in str(caught.value)
    assert f"{field}:" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("migration", "batch_mbs"),  # a typo is not silently ignored (the default would apply)
        ("migration", "prices"),  # moved to pricing.yaml
        ("backups", "objects.copy_worker"),
        ("backups", "retention.presets.gfs.yearly"),
        ("variants", "variants.webp.qualty"),
        ("variants", "uploads.max_image_mb"),
        ("quotas", "alerts.growth_gb_per_day"),
        ("quotas", "default"),
    ],
)
def test_an_unknown_key_is_a_config_error_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, field: str
) -> None:
    path = _config_with(tmp_path, monkeypatch, name, _set(field, 1))
    with pytest.raises(ConfigError, match="Extra inputs are not permitted") as caught:
        LOADERS[name]()
    assert str(path) in str(caught.value) and f"{field}:" in str(caught.value)


def test_the_shipped_files_load() -> None:
    for loader in LOADERS.values():
        loader()


def test_migration_has_one_default_per_setting_the_measured_16_4_16() -> None:
    shipped = load_migration_config().engine
    defaults = parse_migration_config({}).engine
    MB = 1024 * 1024
    assert (defaults.batch_bytes, defaults.stream_above_bytes, defaults.in_flight_bytes) == (
        16 * MB,
        4 * MB,
        16 * MB,
    )
    # the engine's own defaults are the model's, and the file states the same values
    assert MigrationSettings() == defaults
    assert MigrationConfig().engine == defaults
    for name in ("batch_rows", "batch_bytes", "workers", "stream_above_bytes", "in_flight_bytes"):
        assert getattr(shipped, name) == getattr(defaults, name), name


def test_inventory_and_cost_report_use_the_same_postgres_price(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.migration import inventory_assets

    def prices(raw: dict) -> None:  # large enough to show on the demo's few KB (savings are rounded)
        raw["postgres"][raw["configured"]["postgres"]]["per_gb_month"] = 20000.0
        raw["object_storage"][raw["configured"]["object_storage"]]["per_gb_month"] = 5000.0

    _config_with(tmp_path, monkeypatch, "pricing", prices)
    assert "prices" not in load_config("migration")
    table = load_price_table()
    assert (table.postgres.per_gb_month, table.object_storage.per_gb_month) == (20000.0, 5000.0)

    create_legacy_tables(database_url, stories=2)
    res = {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(
            backend="local", local_root=str(tmp_path / "o"), signing_secret="s"
        ),
    }
    result = materialize(inventory_assets, resources=res, instance=DagsterInstance.ephemeral())
    metas = {
        str(e.materialization.metadata["source"].value): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    engine = PostgresResource(database_url=database_url).engine()
    assert set(metas) == {s.name for s in sources()}
    for source in sources():
        meta = metas[source.name]
        assert meta["postgres_price_per_gb_month"].value == 20000.0
        assert meta["object_storage_price_per_gb_month"].value == 5000.0
        expected = inventory_source(
            engine, source, database_price_gb_month=20000.0, object_price_gb_month=5000.0
        ).projected_monthly_saving_usd
        assert meta["projected_monthly_saving_usd"].value == pytest.approx(round_money(expected))
    assert metas["stories"]["projected_monthly_saving_usd"].value > 0

    # the cost report prices base64 in Postgres with the same figure, and its migration saving (1 GB of
    # files once held as base64) uses the inventory's formula at the same two prices
    fields = dict.fromkeys(USAGE_FIELDS, 0.0)
    report = compute_cost_report(
        UsageFigures(**{**fields, "referenced_bytes": 1e9, "owner_count": 1.0}),
        table,
        "day",
        dt.date(2026, 3, 10),
    )
    providers = report.providers[report.providers["is_configured_provider"]]
    postgres_row = providers[providers["scenario"] == "base64_in_postgres"]
    assert list(postgres_row["price_per_gb_month"]) == [metas["stories"]["postgres_price_per_gb_month"].value]
    migration_saving = report.savings.set_index("cause").loc["migration", "monthly_usd"]
    assert migration_saving == pytest.approx(table.base64_overhead * 20000.0 - 5000.0)
