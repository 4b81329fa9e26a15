"""Backup configuration from config/backups.yaml, validated once into typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigError, load_config


@dataclass(frozen=True)
class RetentionPolicy:
    """Grandfather-father-son: keep the newest verified backup of each of the last N days/weeks/months."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    failed_grace_days: int = 2

    def __post_init__(self) -> None:
        for name in ("daily", "weekly", "monthly", "failed_grace_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retention {name} must be >= 0")
        if self.daily + self.weekly + self.monthly == 0:
            raise ConfigError("retention keeps nothing: set at least one of daily, weekly, monthly")


@dataclass(frozen=True)
class BackupSettings:
    pg_bin_dir: str = ""
    compression_level: int = 6
    exclude_schemas: tuple[str, ...] = ()
    copy_workers: int = 8
    sample_share: float = 1.0
    drill_object_sample: int = 25
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_name: str = "gfs"


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"backups.yaml: `{name}` must be a mapping")
    return value


def parse_settings(raw: dict[str, Any], policy: str | None = None) -> BackupSettings:
    database, objects = _section(raw, "database"), _section(raw, "objects")
    verification, drill, retention = (
        _section(raw, "verification"),
        _section(raw, "drill"),
        _section(raw, "retention"),
    )
    presets = retention.get("presets") or {}
    name = policy or retention.get("policy", "gfs")
    if name not in presets:
        raise ConfigError(f"backups.yaml: retention policy {name!r} is not one of {sorted(presets)}")
    share = float(verification.get("sample_share", 1.0))
    if not 0 < share <= 1:
        raise ConfigError("backups.yaml: verification.sample_share must be in (0, 1]")
    level = int(database.get("compression_level", 6))
    if not 0 <= level <= 9:
        raise ConfigError("backups.yaml: database.compression_level must be 0-9")
    return BackupSettings(
        pg_bin_dir=str(database.get("pg_bin_dir") or ""),
        compression_level=level,
        exclude_schemas=tuple(database.get("exclude_schemas") or ()),
        copy_workers=max(1, int(objects.get("copy_workers", 8))),
        sample_share=share,
        drill_object_sample=max(1, int(drill.get("object_sample", 25))),
        retention=RetentionPolicy(
            **{k: int(v) for k, v in presets[name].items()},
            failed_grace_days=int(retention.get("failed_grace_days", 2)),
        ),
        retention_name=name,
    )


def load_settings(policy: str | None = None) -> BackupSettings:
    return parse_settings(load_config("backups"), policy)
