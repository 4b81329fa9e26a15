"""The price table (config/pricing.yaml) and the monthly cost of N gigabytes on a provider.

Every price must carry the date it was read (`as_of`) and a source: list prices change, and a cost report
whose price is of unknown age is not a figure an analyst can use. Prices in EUR are converted with the
configured rate, so every cost this module returns is in USD.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from core.config import ConfigError, load_config

Category = Literal["object_storage", "postgres"]

#: Bytes per GB in the price tables (providers bill decimal GB; S3 bills GiB, a 7 % difference noted here).
GB = 1_000_000_000


class PricingConfigError(ConfigError):
    """The price table is incomplete or inconsistent; no report is produced from it."""


@dataclass(frozen=True)
class Price:
    """One provider's storage price, in USD after conversion."""

    key: str
    category: Category
    label: str
    per_gb_month: float
    base_monthly: float
    included_gb: float
    egress_per_gb: float
    as_of: dt.date
    source: str
    currency: str
    note: str = ""

    def monthly_cost(self, gb: float) -> float:
        """USD per month for keeping `gb` GB: base fee plus the per-GB price beyond what is included."""
        return self.base_monthly + max(0.0, gb - self.included_gb) * self.per_gb_month


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]
    configured_object_storage: str
    configured_postgres: str
    budget_monthly_usd: float
    reads_per_object_per_month: float
    base64_overhead: float

    def of(self, category: Category) -> list[Price]:
        return [p for p in self.prices.values() if p.category == category]

    @property
    def object_storage(self) -> Price:
        return self.prices[self.configured_object_storage]

    @property
    def postgres(self) -> Price:
        return self.prices[self.configured_postgres]


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PricingConfigError(f"{where}: as_of must be a date (YYYY-MM-DD), got {value!r}")


def _number(raw: dict[str, Any], name: str, where: str, default: float | None = None) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PricingConfigError(f"{where}: {name} must be a non-negative number, got {value!r}")
    return float(value)


def parse_price_table(raw: dict[str, Any]) -> PriceTable:
    """Validate the whole table: every price has a number, a source and a source date."""
    currency = raw.get("currency", "USD")
    if currency != "USD":
        raise PricingConfigError("pricing currency must be USD (per-provider EUR prices are converted)")
    fx = raw.get("fx") or {}
    prices: dict[str, Price] = {}
    for category in ("object_storage", "postgres"):
        entries = raw.get(category) or {}
        if not isinstance(entries, dict) or not entries:
            raise PricingConfigError(f"pricing needs a non-empty `{category}` mapping")
        for key, entry in entries.items():
            where = f"pricing {category}.{key}"
            if not isinstance(entry, dict):
                raise PricingConfigError(f"{where} must be a mapping")
            if "as_of" not in entry:
                raise PricingConfigError(f"{where} has no as_of: every price needs the date it was read")
            if not entry.get("source"):
                raise PricingConfigError(f"{where} has no source")
            entry_currency = entry.get("currency", "USD")
            if entry_currency == "USD":
                rate = 1.0
            else:
                rate_key = f"{entry_currency}_USD"
                if rate_key not in fx or "as_of" not in fx:
                    raise PricingConfigError(
                        f"{where} is priced in {entry_currency}: set fx.{rate_key} and fx.as_of"
                    )
                rate = _number(fx, rate_key, "pricing fx")
                _date(fx["as_of"], "pricing fx")
            if key in prices:
                raise PricingConfigError(f"{where}: provider key {key!r} is used twice")
            prices[key] = Price(
                key=key,
                category=category,  # type: ignore[arg-type]
                label=str(entry.get("label", key)),
                per_gb_month=_number(entry, "per_gb_month", where) * rate,
                base_monthly=_number(entry, "base_monthly", where, 0.0) * rate,
                included_gb=_number(entry, "included_gb", where, 0.0),
                egress_per_gb=_number(entry, "egress_per_gb", where, 0.0) * rate,
                as_of=_date(entry["as_of"], where),
                source=str(entry["source"]),
                currency=str(entry_currency),
                note=str(entry.get("note", "")),
            )
    configured = raw.get("configured") or {}
    table = PriceTable(
        prices=prices,
        configured_object_storage=str(configured.get("object_storage", "")),
        configured_postgres=str(configured.get("postgres", "")),
        budget_monthly_usd=_number(raw, "budget_monthly_usd", "pricing"),
        reads_per_object_per_month=_number(raw, "reads_per_object_per_month", "pricing", 1.0),
        base64_overhead=_number(raw, "base64_overhead", "pricing", 4 / 3),
    )
    for category, chosen in (
        ("object_storage", table.configured_object_storage),
        ("postgres", table.configured_postgres),
    ):
        if chosen not in prices or prices[chosen].category != category:
            names = [p.key for p in table.of(category)]  # type: ignore[arg-type]
            raise PricingConfigError(f"configured.{category} must be one of {names}, got {chosen!r}")
    return table


def load_price_table() -> PriceTable:
    return parse_price_table(load_config("pricing"))


def gb(n_bytes: float) -> float:
    return n_bytes / GB
