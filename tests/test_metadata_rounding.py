"""Run metadata is rounded like the cost report: money to cents (or two significant figures below a
cent), GB and MB to 3 decimals, percentages and rates to one decimal."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, materialize

from assets.migration import inventory_assets
from core.usage.formatting import round_gb, round_mb, round_money, round_pct, round_rate
from tests.support.migration import create_legacy_tables
from tests.test_migration_assets import migration_of, resources


def test_each_kind_of_figure_has_its_precision() -> None:
    assert round_money(0.22808014100000001) == 0.23
    assert round_money(0.000312345) == 0.00031  # not $0.00
    assert round_gb(1.23456789) == 1.235 and round_mb(146.23456) == 146.235
    assert round_pct(98.76810165363523) == 98.8
    assert round_rate(23.456789) == 23.5
    assert round_rate(float("inf")) == 0.0 and round_mb(float("nan")) == 0.0


def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def test_migration_metadata_carries_no_float_noise(database_url: str, tmp_path: Path) -> None:
    create_legacy_tables(database_url, stories=2)
    res, instance = resources(database_url, tmp_path), DagsterInstance.ephemeral()
    inventory = materialize(inventory_assets, resources=res, instance=instance)
    for event in inventory.get_asset_materialization_events():
        saving = event.materialization.metadata["projected_monthly_saving_usd"].value
        assert saving != 0 and saving == round_money(saving)  # a tiny saving keeps its significant figures

    moved = materialize([migration_of("stories")], resources=res, instance=instance)
    meta = moved.get_asset_materialization_events()[0].materialization.metadata
    assert decimals(meta["mb_per_s"].value) <= 1
    floats = {name: m.value for name, m in meta.items() if isinstance(m.value, float)}
    assert floats and all(decimals(value) <= 3 for value in floats.values()), floats
