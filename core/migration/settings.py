"""config/migration.yaml, typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigError, load_config
from core.migration.engine import MigrationSettings


@dataclass(frozen=True)
class MigrationConfig:
    engine: MigrationSettings
    reference_sample: int
    reclaim_warn_bytes: int
    database_price_gb_month: float
    object_price_gb_month: float


def _positive(raw: dict[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"migration.yaml: {name} must be a non-negative number, got {value!r}")
    return float(value)


def parse_migration_config(raw: dict[str, Any]) -> MigrationConfig:
    if "max_pixels" in raw:
        raise ConfigError(
            "migration.yaml: max_pixels has moved to images.yaml (max_pixels), the one pixel limit the "
            "migration, uploads and variants share; remove it here"
        )
    prices = raw.get("prices") or {}
    workers = int(_positive(raw, "workers", 4))
    if workers < 1:
        raise ConfigError("migration.yaml: workers must be at least 1")
    return MigrationConfig(
        engine=MigrationSettings(
            batch_rows=max(1, int(_positive(raw, "batch_rows", 32))),
            batch_bytes=int(_positive(raw, "batch_mb", 32) * 1024 * 1024),
            workers=workers,
            stream_above_bytes=int(_positive(raw, "stream_above_mb", 4) * 1024 * 1024),
            in_flight_bytes=int(_positive(raw, "in_flight_mb", 16) * 1024 * 1024),
            max_blob_bytes=int(_positive(raw, "max_blob_mb", 50) * 1024 * 1024),
            declared_type_columns=tuple(sorted((raw.get("declared_type_columns") or {}).items())),
        ),
        reference_sample=int(_positive(raw, "reference_sample", 25)),
        reclaim_warn_bytes=int(_positive(raw, "reclaim_warn_mb", 1024) * 1024 * 1024),
        database_price_gb_month=_positive(prices, "database_per_gb_month", 0.25),
        object_price_gb_month=_positive(prices, "object_storage_per_gb_month", 0.015),
    )


def load_migration_config() -> MigrationConfig:
    return parse_migration_config(load_config("migration"))
