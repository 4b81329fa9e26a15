"""Backup configuration from config/backups.yaml: a typed model (one default per setting, unknown keys
refused) flattened into the values the backup code uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from core.config import ConfigError, ConfigModel, load_config, validate_model


class DatabaseSection(ConfigModel):
    #: Folder holding pg_dump/pg_restore; empty: PG_BIN_DIR, the embedded server's binaries, then PATH.
    pg_bin_dir: str = ""
    compression_level: int = Field(default=6, ge=0, le=9)
    exclude_schemas: tuple[str, ...] = Field(default=(), strict=False)  # a YAML list


class ObjectsSection(ConfigModel):
    copy_workers: int = Field(default=8, ge=1)


class VerificationSection(ConfigModel):
    sample_share: float = Field(default=1.0, gt=0, le=1)


class DrillSection(ConfigModel):
    object_sample: int = Field(default=25, ge=1)


class Preset(ConfigModel):
    """How many of the newest verified backups of the last N days/weeks/months are kept (all explicit)."""

    daily: int = Field(ge=0)
    weekly: int = Field(ge=0)
    monthly: int = Field(ge=0)


class RetentionSection(ConfigModel):
    policy: str = "gfs"
    presets: dict[str, Preset] = Field(min_length=1)
    failed_grace_days: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _policy_is_a_preset(self) -> RetentionSection:
        if self.policy not in self.presets:
            raise ValueError(f"policy {self.policy!r} is not one of the presets {sorted(self.presets)}")
        return self


class BackupsConfig(ConfigModel):
    database: DatabaseSection = DatabaseSection()
    objects: ObjectsSection = ObjectsSection()
    verification: VerificationSection = VerificationSection()
    drill: DrillSection = DrillSection()
    retention: RetentionSection


@dataclass(frozen=True)
class RetentionPolicy:
    """Grandfather-father-son: keep the newest verified backup of each of the last N days/weeks/months."""

    daily: int
    weekly: int
    monthly: int
    failed_grace_days: int = RetentionSection.model_fields["failed_grace_days"].default

    def __post_init__(self) -> None:
        for name in ("daily", "weekly", "monthly", "failed_grace_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retention {name} must be >= 0")
        if self.daily + self.weekly + self.monthly == 0:
            raise ConfigError("retention keeps nothing: set at least one of daily, weekly, monthly")


@dataclass(frozen=True)
class BackupSettings:
    """The validated file, flattened for the backup code (defaults live in the models above)."""

    pg_bin_dir: str
    compression_level: int
    exclude_schemas: tuple[str, ...]
    copy_workers: int
    sample_share: float
    drill_object_sample: int
    retention: RetentionPolicy
    retention_name: str


def parse_settings(raw: dict[str, Any], policy: str | None = None) -> BackupSettings:
    """Validate backups.yaml; `policy` picks another preset than the file's (e.g. per run)."""
    if policy is not None and isinstance(raw.get("retention"), dict):
        raw = {**raw, "retention": {**raw["retention"], "policy": policy}}
    config = validate_model("backups", BackupsConfig, raw)
    retention = config.retention
    preset = retention.presets[retention.policy]
    return BackupSettings(
        pg_bin_dir=config.database.pg_bin_dir,
        compression_level=config.database.compression_level,
        exclude_schemas=config.database.exclude_schemas,
        copy_workers=config.objects.copy_workers,
        sample_share=config.verification.sample_share,
        drill_object_sample=config.drill.object_sample,
        retention=RetentionPolicy(
            preset.daily, preset.weekly, preset.monthly, failed_grace_days=retention.failed_grace_days
        ),
        retention_name=retention.policy,
    )


def load_settings(policy: str | None = None) -> BackupSettings:
    return parse_settings(load_config("backups"), policy)
