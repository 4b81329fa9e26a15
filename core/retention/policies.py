"""Retention policy configuration (config/retention.yaml), validated before any sweep touches data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.config import ConfigError, load_config

ORPHANED_OBJECTS = "orphaned_objects"
SOFT_DELETED_ROWS = "soft_deleted_rows"
INACTIVE_USERS = "inactive_users"
ABANDONED_UPLOADS = "abandoned_uploads"
EXPIRED_DOCUMENTS = "expired_documents"
ORPHANED_VARIANTS = "orphaned_variants"

#: Order a sweep runs them in: releases first, so the objects they free are deleted in the same run, and
#: variants last, so variants of originals deleted by any earlier policy go too.
POLICY_ORDER: tuple[str, ...] = (
    EXPIRED_DOCUMENTS,
    SOFT_DELETED_ROWS,
    INACTIVE_USERS,
    ABANDONED_UPLOADS,
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
)

PRESETS = ("standard", "keep_forever")


class RetentionConfigError(ConfigError):
    """config/retention.yaml is unusable; nothing has run."""


@dataclass(frozen=True)
class RetentionConfig:
    preset: str = "standard"
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(POLICY_ORDER, True))
    orphan_after: timedelta = timedelta(days=7)
    soft_delete_after: timedelta = timedelta(days=30)
    soft_delete_sources: tuple[str, ...] | None = None  # None: every source with a soft-delete column
    warn_after_months: int = 12
    delete_after_months: int = 13
    min_warning: timedelta = timedelta(days=30)
    upload_after: timedelta = timedelta(hours=24)
    batch_size: int = 5000
    storage_delete_workers: int = 1
    export_url_expires: timedelta = timedelta(hours=72)
    export_keep: timedelta = timedelta(days=7)

    def is_enabled(self, policy: str) -> bool:
        return self.preset != "keep_forever" and self.enabled.get(policy, False)

    def disabled_reason(self, policy: str) -> str:
        return "preset keep_forever" if self.preset == "keep_forever" else "disabled in config"


def months_before(moment: datetime, months: int) -> datetime:
    """Calendar months back (clamped to the month's last day): 13 months before 2026-03-31 is 2025-02-28."""
    month_index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(month_index, 12)
    month += 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RetentionConfigError(f"{what} must be a non-negative number, got {value!r}")
    return float(value)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RetentionConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def parse_retention_config(raw: dict[str, Any]) -> RetentionConfig:
    preset = raw.get("preset", "standard")
    if preset not in PRESETS:
        raise RetentionConfigError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    policies = raw.get("policies") or {}
    if not isinstance(policies, dict):
        raise RetentionConfigError("policies must be a mapping of policy name to settings")
    unknown = set(policies) - set(POLICY_ORDER)
    if unknown:
        raise RetentionConfigError(f"unknown policies {sorted(unknown)}; known: {list(POLICY_ORDER)}")

    def section(name: str) -> dict[str, Any]:
        value = policies.get(name) or {}
        if not isinstance(value, dict):
            raise RetentionConfigError(f"policies.{name} must be a mapping")
        return value

    enabled: dict[str, bool] = {}
    for name in POLICY_ORDER:
        flag = section(name).get("enabled", True)
        if not isinstance(flag, bool):
            raise RetentionConfigError(f"policies.{name}.enabled must be true or false, got {flag!r}")
        enabled[name] = flag

    soft = section(SOFT_DELETED_ROWS)
    sources = soft.get("sources")
    if sources is not None and (
        not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)
    ):
        raise RetentionConfigError("policies.soft_deleted_rows.sources must be a list of source names")
    inactive = section(INACTIVE_USERS)
    warn = _positive_int(inactive.get("warn_after_months", 12), "inactive_users.warn_after_months")
    delete = _positive_int(inactive.get("delete_after_months", 13), "inactive_users.delete_after_months")
    if warn >= delete:
        raise RetentionConfigError(
            f"inactive_users.warn_after_months ({warn}) must be less than delete_after_months ({delete})"
        )
    export = raw.get("gdpr_export") or {}
    return RetentionConfig(
        preset=preset,
        enabled=enabled,
        orphan_after=timedelta(
            days=_positive_number(
                section(ORPHANED_OBJECTS).get("after_days", 7), "orphaned_objects.after_days"
            )
        ),
        soft_delete_after=timedelta(
            days=_positive_number(soft.get("after_days", 30), "soft_deleted_rows.after_days")
        ),
        soft_delete_sources=tuple(sources) if sources is not None else None,
        warn_after_months=warn,
        delete_after_months=delete,
        min_warning=timedelta(
            days=_positive_number(inactive.get("min_warning_days", 30), "inactive_users.min_warning_days")
        ),
        upload_after=timedelta(
            hours=_positive_number(
                section(ABANDONED_UPLOADS).get("after_hours", 24), "abandoned_uploads.after_hours"
            )
        ),
        batch_size=_positive_int(raw.get("batch_size", 5000), "batch_size"),
        storage_delete_workers=_positive_int(raw.get("storage_delete_workers", 1), "storage_delete_workers"),
        export_url_expires=timedelta(
            hours=_positive_number(export.get("url_expires_hours", 72), "gdpr_export.url_expires_hours")
        ),
        export_keep=timedelta(days=_positive_number(export.get("keep_days", 7), "gdpr_export.keep_days")),
    )


def load_retention_config() -> RetentionConfig:
    return parse_retention_config(load_config("retention"))
