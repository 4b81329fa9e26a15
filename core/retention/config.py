"""Retention configuration (config/retention.yaml): a typed model, validated before any sweep touches data.

Adding a policy: a settings section here (a `Toggle` subclass if it has settings) and its name in
POLICY_ORDER, then one function in core/retention/policies/ and one entry in its REGISTRY.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from core.config import ConfigError, config_path, load_config

ORPHANED_OBJECTS = "orphaned_objects"
SOFT_DELETED_ROWS = "soft_deleted_rows"
INACTIVE_USERS = "inactive_users"
ABANDONED_UPLOADS = "abandoned_uploads"
EXPIRED_DOCUMENTS = "expired_documents"
ORPHANED_VARIANTS = "orphaned_variants"
QUARANTINED_UPLOADS = "quarantined_uploads"

#: Order a sweep runs them in: releases first, so the objects they free are deleted in the same run, and
#: variants last, so variants of originals deleted by any earlier policy go too.
POLICY_ORDER: tuple[str, ...] = (
    EXPIRED_DOCUMENTS,
    SOFT_DELETED_ROWS,
    INACTIVE_USERS,
    ABANDONED_UPLOADS,
    QUARANTINED_UPLOADS,
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
)

PRESETS = ("standard", "keep_forever")


class RetentionConfigError(ConfigError):
    """config/retention.yaml is unusable; nothing has run."""


#: Strict: `enabled: "yes"` or `after_days: true` in YAML is a mistake to report, not to coerce.
NonNegativeFloat = Annotated[float, Field(ge=0, strict=True)]
PositiveInt = Annotated[int, Field(gt=0, strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Toggle(_Model):
    enabled: StrictBool = True


class OrphanedObjects(Toggle):
    after_days: NonNegativeFloat = 7


class SoftDeletedRows(Toggle):
    after_days: NonNegativeFloat = 30
    sources: tuple[str, ...] | None = None  # None: every source with a soft-delete column


class InactiveUsers(Toggle):
    warn_after_months: PositiveInt = 12
    delete_after_months: PositiveInt = 13
    min_warning_days: NonNegativeFloat = 30

    @model_validator(mode="after")
    def _warn_before_delete(self) -> InactiveUsers:
        if self.warn_after_months >= self.delete_after_months:
            raise ValueError(
                f"warn_after_months ({self.warn_after_months}) must be less than delete_after_months "
                f"({self.delete_after_months})"
            )
        return self


class AbandonedUploads(Toggle):
    after_hours: NonNegativeFloat = 24


class QuarantinedUploads(Toggle):
    after_days: NonNegativeFloat = 30  # rejected upload bytes in the quarantine area


class Policies(_Model):
    expired_documents: Toggle = Toggle()
    soft_deleted_rows: SoftDeletedRows = SoftDeletedRows()
    inactive_users: InactiveUsers = InactiveUsers()
    abandoned_uploads: AbandonedUploads = AbandonedUploads()
    quarantined_uploads: QuarantinedUploads = QuarantinedUploads()
    orphaned_objects: OrphanedObjects = OrphanedObjects()
    orphaned_variants: Toggle = Toggle()


class GdprExport(_Model):
    url_expires_hours: NonNegativeFloat = 72
    keep_days: NonNegativeFloat = 7


class RetentionConfig(_Model):
    """The file's shape; the durations the sweep uses are properties."""

    preset: Literal["standard", "keep_forever"] = "standard"
    policies: Policies = Policies()
    batch_size: PositiveInt = 5000
    storage_delete_workers: PositiveInt = 1
    gdpr_export: GdprExport = GdprExport()

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        """`policies:` / `orphaned_objects:` left empty in YAML mean defaults."""
        if not isinstance(raw, dict):
            return raw
        raw = {k: v for k, v in raw.items() if v is not None}
        if isinstance(raw.get("policies"), dict):
            raw["policies"] = {k: v for k, v in raw["policies"].items() if v is not None}
        return raw

    def settings(self, policy: str) -> Toggle:
        return getattr(self.policies, policy)  # type: ignore[no-any-return]

    @property
    def enabled(self) -> dict[str, bool]:
        return {name: self.settings(name).enabled for name in POLICY_ORDER}

    def is_enabled(self, policy: str) -> bool:
        return self.preset != "keep_forever" and self.enabled.get(policy, False)

    def disabled_reason(self, policy: str) -> str:
        return "preset keep_forever" if self.preset == "keep_forever" else "disabled in config"

    def only(self, *policies: str) -> RetentionConfig:
        """This configuration with just `policies` enabled."""
        update = {
            name: self.settings(name).model_copy(update={"enabled": name in policies})
            for name in POLICY_ORDER
        }
        return self.model_copy(update={"policies": self.policies.model_copy(update=update)})

    @property
    def orphan_after(self) -> timedelta:
        return timedelta(days=self.policies.orphaned_objects.after_days)

    @property
    def soft_delete_after(self) -> timedelta:
        return timedelta(days=self.policies.soft_deleted_rows.after_days)

    @property
    def soft_delete_sources(self) -> tuple[str, ...] | None:
        return self.policies.soft_deleted_rows.sources

    @property
    def warn_after_months(self) -> int:
        return self.policies.inactive_users.warn_after_months

    @property
    def delete_after_months(self) -> int:
        return self.policies.inactive_users.delete_after_months

    @property
    def min_warning(self) -> timedelta:
        return timedelta(days=self.policies.inactive_users.min_warning_days)

    @property
    def upload_after(self) -> timedelta:
        return timedelta(hours=self.policies.abandoned_uploads.after_hours)

    @property
    def quarantine_keep(self) -> timedelta:
        return timedelta(days=self.policies.quarantined_uploads.after_days)

    @property
    def export_url_expires(self) -> timedelta:
        return timedelta(hours=self.gdpr_export.url_expires_hours)

    @property
    def export_keep(self) -> timedelta:
        return timedelta(days=self.gdpr_export.keep_days)


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


def parse_retention_config(raw: dict[str, Any], what: str = "retention configuration") -> RetentionConfig:
    try:
        return RetentionConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'top level'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            + (
                " (unknown policies; known: " + ", ".join(POLICY_ORDER) + ")"
                if _unknown_policy(error)
                else ""
            )
            for error in exc.errors()
        )
        raise RetentionConfigError(f"{what}: {problems}") from None


def _unknown_policy(error: Any) -> bool:
    loc = error["loc"]
    return error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "policies"


def load_retention_config() -> RetentionConfig:
    return parse_retention_config(load_config("retention"), str(config_path("retention")))


__all__ = [
    "ABANDONED_UPLOADS",
    "EXPIRED_DOCUMENTS",
    "INACTIVE_USERS",
    "ORPHANED_OBJECTS",
    "ORPHANED_VARIANTS",
    "POLICY_ORDER",
    "PRESETS",
    "QUARANTINED_UPLOADS",
    "SOFT_DELETED_ROWS",
    "RetentionConfig",
    "RetentionConfigError",
    "load_retention_config",
    "months_before",
    "parse_retention_config",
]
