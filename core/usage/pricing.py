"""The price table (config/pricing.yaml) and the monthly cost of N gigabytes on a provider.

Every price must carry the date it was read (`as_of`) and a source: list prices change, and a cost report
whose price is of unknown age is not a figure an analyst can use. Prices in EUR are converted with the
configured rate, so every cost this module returns is in USD.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from core.config import ConfigError, config_path, load_config

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
    stale_after_days: int
    fx_as_of: dt.date | None = None
    fx_source: str = ""

    def of(self, category: Category) -> list[Price]:
        return [p for p in self.prices.values() if p.category == category]

    @property
    def object_storage(self) -> Price:
        return self.prices[self.configured_object_storage]

    @property
    def postgres(self) -> Price:
        return self.prices[self.configured_postgres]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderPriceConfig(_Strict):
    """One provider's list price, as written in config/pricing.yaml (in its own currency)."""

    label: str | None = None
    per_gb_month: NonNegativeFloat = Field(description="list price per GB-month beyond what is included")
    base_monthly: NonNegativeFloat = Field(0.0, description="fixed monthly fee that comes with the storage")
    included_gb: NonNegativeFloat = Field(0.0, description="GB covered by the fixed fee or the free tier")
    egress_per_gb: NonNegativeFloat = Field(0.0, description="price of serving one GB to the internet")
    as_of: dt.date = Field(description="date the price was read: every price needs one")
    source: str = Field(min_length=1, description="where the price was read")
    currency: Literal["USD", "EUR"] = "USD"
    note: str = ""

    @field_validator("as_of", mode="before")
    @classmethod
    def _a_calendar_date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str):  # only YYYY-MM-DD, not the timestamps or numbers pydantic would accept
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"as_of must be a date (YYYY-MM-DD), got {value!r}") from None
        if not isinstance(value, dt.date):
            raise ValueError(f"as_of must be a date (YYYY-MM-DD), got {value!r}")
        return value


class FxConfig(_Strict):
    """The rate EUR prices are converted with, dated and sourced like a price."""

    EUR_USD: PositiveFloat | None = None
    as_of: dt.date | None = None
    source: str = ""


class ConfiguredConfig(_Strict):
    object_storage: str = Field(description="key under object_storage the platform runs on")
    postgres: str = Field(description="key under postgres that hosts the database")


class PricingConfig(_Strict):
    """config/pricing.yaml."""

    currency: Literal["USD"] = "USD"
    fx: FxConfig = FxConfig()
    configured: ConfiguredConfig
    budget_monthly_usd: NonNegativeFloat = Field(description="monthly storage budget; a WARN check above")
    reads_per_object_per_month: NonNegativeFloat = Field(1.0, description="assumed image views per month")
    base64_overhead: PositiveFloat = Field(4 / 3, description="base64 text bytes per file byte")
    stale_after_days: PositiveInt = Field(
        183, description="the report warns about a price (or rate) read longer ago than this"
    )
    object_storage: dict[str, ProviderPriceConfig] = Field(min_length=1)
    postgres: dict[str, ProviderPriceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PricingConfig:
        for category in ("object_storage", "postgres"):
            entries: dict[str, ProviderPriceConfig] = getattr(self, category)
            for key, entry in entries.items():
                if entry.currency == "EUR" and (self.fx.EUR_USD is None or self.fx.as_of is None):
                    raise ValueError(f"{category}.{key} is priced in EUR: set fx.EUR_USD and fx.as_of")
        if set(self.object_storage) & set(self.postgres):
            raise ValueError(
                f"provider keys used twice: {sorted(set(self.object_storage) & set(self.postgres))}"
            )
        for category in ("object_storage", "postgres"):
            chosen = getattr(self.configured, category)
            names = sorted(getattr(self, category))
            if chosen not in names:
                raise ValueError(f"configured.{category} must be one of {names}, got {chosen!r}")
        return self


def _config_error(exc: ValidationError, name: str = "pricing") -> PricingConfigError:
    """A ValidationError as a ConfigError naming the file and each field."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()
    )
    return PricingConfigError(f"{config_path(name)}: {problems}")


def parse_price_table(raw: dict[str, Any]) -> PriceTable:
    """Validate the whole table (PricingConfig); every price has a number, a source and a source date."""
    try:
        config = PricingConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc) from None
    prices: dict[str, Price] = {}
    for category in ("object_storage", "postgres"):
        entries: dict[str, ProviderPriceConfig] = getattr(config, category)
        for key, entry in entries.items():
            rate = 1.0 if entry.currency == "USD" else float(config.fx.EUR_USD or 0.0)
            prices[key] = Price(
                key=key,
                category=category,  # type: ignore[arg-type]
                label=entry.label or key,
                per_gb_month=entry.per_gb_month * rate,
                base_monthly=entry.base_monthly * rate,
                included_gb=entry.included_gb,
                egress_per_gb=entry.egress_per_gb * rate,
                as_of=entry.as_of,
                source=entry.source,
                currency=entry.currency,
                note=entry.note,
            )
    uses_fx = any(p.currency != "USD" for p in prices.values())
    return PriceTable(
        prices=prices,
        configured_object_storage=config.configured.object_storage,
        configured_postgres=config.configured.postgres,
        budget_monthly_usd=config.budget_monthly_usd,
        reads_per_object_per_month=config.reads_per_object_per_month,
        base64_overhead=config.base64_overhead,
        stale_after_days=config.stale_after_days,
        fx_as_of=config.fx.as_of if uses_fx else None,
        fx_source=config.fx.source if uses_fx else "",
    )


def stale_prices(prices: PriceTable, on: dt.date) -> list[str]:
    """One sentence per price (or exchange rate) read more than `stale_after_days` before `on`."""
    limit = dt.timedelta(days=prices.stale_after_days)
    warnings = [
        f"The price of {p.label} is dated {p.as_of.isoformat()}, {(on - p.as_of).days} days before this"
        f" report: check {p.source} and update it in config/pricing.yaml."
        for p in prices.prices.values()
        if on - p.as_of > limit
    ]
    if prices.fx_as_of is not None and on - prices.fx_as_of > limit:
        warnings.append(
            f"The EUR to USD rate is dated {prices.fx_as_of.isoformat()}, {(on - prices.fx_as_of).days} days"
            " before this report: update fx in config/pricing.yaml."
        )
    return warnings


def load_price_table() -> PriceTable:
    return parse_price_table(load_config("pricing"))


def gb(n_bytes: float) -> float:
    return n_bytes / GB
