"""Per-owner quotas by tier (config/quotas.yaml) and the alert thresholds that go with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from core.config import ConfigError, ConfigModel, load_model, validate_model
from core.sources import plain_identifier

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


class QuotaConfigError(ConfigError):
    """The quota configuration is unusable."""


def parse_size(value: Any) -> int:
    """`"100 MB"` -> 100_000_000; a bare number is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match:
            return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])
    raise QuotaConfigError(f"size must be bytes or like '100 MB' / '5 GiB', got {value!r}")


#: A size in the file: bytes, or a string like "100 MB" / "5 GiB".
Size = Annotated[int, BeforeValidator(parse_size)]


class QuotaAlerts(ConfigModel):
    #: Warn when an owner has used more than this fraction of their quota.
    quota_warn_fraction: float = Field(default=0.8, gt=0, le=1)
    #: Warn when storage grows faster than this (seed 000: unusual spike > 10 GB/hour).
    growth_gb_per_hour: float = Field(default=10, gt=0)


class QuotaConfig(ConfigModel):
    """config/quotas.yaml, typed; each setting's one default is here."""

    tiers: dict[str, Size] = Field(min_length=1)
    tier_column: Annotated[str, AfterValidator(lambda v: plain_identifier(v, "tier_column"))] = "tier"
    default_tier: str = "free"
    alerts: QuotaAlerts = QuotaAlerts()
    largest_files: int = Field(default=20, ge=0)

    @model_validator(mode="after")
    def _default_tier_is_a_tier(self) -> QuotaConfig:
        if self.default_tier not in self.tiers:
            tiers = sorted(self.tiers)
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers {tiers}")
        return self

    @property
    def quota_warn_fraction(self) -> float:
        return self.alerts.quota_warn_fraction

    @property
    def growth_gb_per_hour(self) -> float:
        return self.alerts.growth_gb_per_hour

    def quota_for(self, tier: str | None) -> tuple[str, int]:
        """The tier actually applied and its quota in bytes (unknown tiers fall back to the default)."""
        chosen = tier if tier is not None and tier in self.tiers else self.default_tier
        return chosen, self.tiers[chosen]


def parse_quota_config(raw: dict[str, Any]) -> QuotaConfig:
    return validate_model("quotas", QuotaConfig, raw, error=QuotaConfigError)


def load_quota_config() -> QuotaConfig:
    return load_model("quotas", QuotaConfig, error=QuotaConfigError)


@dataclass(frozen=True)
class OwnerQuota:
    owner_id: str
    tier: str
    used_bytes: int
    quota_bytes: int

    @property
    def used_fraction(self) -> float:
        return self.used_bytes / self.quota_bytes if self.quota_bytes else 0.0


def owners_over(quotas: list[OwnerQuota], fraction: float) -> list[OwnerQuota]:
    """Owners whose usage is strictly above `fraction` of their quota, fullest first."""
    return sorted((q for q in quotas if q.used_fraction > fraction), key=lambda q: -q.used_fraction)
