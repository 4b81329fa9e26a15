"""Per-owner quotas by tier (config/quotas.yaml) and the alert thresholds that go with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.config import ConfigError, load_config
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


@dataclass(frozen=True)
class QuotaConfig:
    tiers: dict[str, int]
    tier_column: str
    default_tier: str
    quota_warn_fraction: float
    growth_gb_per_hour: float
    largest_files: int

    def quota_for(self, tier: str | None) -> tuple[str, int]:
        """The tier actually applied and its quota in bytes (unknown tiers fall back to the default)."""
        chosen = tier if tier in self.tiers else self.default_tier
        return chosen, self.tiers[chosen]


def parse_quota_config(raw: dict[str, Any]) -> QuotaConfig:
    tiers_raw = raw.get("tiers") or {}
    if not isinstance(tiers_raw, dict) or not tiers_raw:
        raise QuotaConfigError("quotas need a non-empty `tiers` mapping of tier name to size")
    tiers = {str(name): parse_size(size) for name, size in tiers_raw.items()}
    default = str(raw.get("default_tier", "free"))
    if default not in tiers:
        raise QuotaConfigError(f"default_tier {default!r} is not one of the tiers {sorted(tiers)}")
    alerts = raw.get("alerts") or {}
    fraction = float(alerts.get("quota_warn_fraction", 0.8))
    if not 0 < fraction <= 1:
        raise QuotaConfigError(f"alerts.quota_warn_fraction must be in (0, 1], got {fraction}")
    growth = float(alerts.get("growth_gb_per_hour", 10))
    if growth <= 0:
        raise QuotaConfigError(f"alerts.growth_gb_per_hour must be positive, got {growth}")
    return QuotaConfig(
        tiers=tiers,
        tier_column=plain_identifier(raw.get("tier_column", "tier"), "quotas tier_column"),
        default_tier=default,
        quota_warn_fraction=fraction,
        growth_gb_per_hour=growth,
        largest_files=int(raw.get("largest_files", 20)),
    )


def load_quota_config() -> QuotaConfig:
    return parse_quota_config(load_config("quotas"))


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
