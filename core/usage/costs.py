"""Cost reports from measured usage and the price table: per provider, before/after, savings, projections.

Inputs are the usage_summaries figures of one day (daily report) or their average over a month (monthly
report: the average stored GB over the month is exactly the GB-months providers bill). All outputs are
monthly USD, computed in Python from a handful of numbers; the heavy lifting was the SQL snapshot.

- "now": object storage bytes (originals + variants + backups) on an object storage provider, plus the
  base64 still left in the database on the configured Postgres host.
- "base64_in_postgres" (the before of the migration): every live reference's content as base64 text
  (one copy per reference, as the legacy rows held it, times the base64 overhead) plus what is still in
  the database, on a Postgres host.
- Savings by cause use marginal per-GB prices (no free tiers or base fees) so causes add up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.usage.formatting import money, percent_less, size, unit_price
from core.usage.pricing import Price, PriceTable, gb

if TYPE_CHECKING:  # pandas loads only where a report is computed, not in every step process
    import pandas as pd

PROJECTION_USERS = (10, 100, 1_000, 10_000)
USAGE_FIELDS = (
    "database_bytes",
    "database_relation_bytes",
    "original_bytes",
    "referenced_bytes",
    "live_original_bytes",
    "variant_bytes",
    "variant_delivery_saved_bytes",
    "backup_bytes",
    "retention_deleted_bytes",
    "owner_count",
)


@dataclass(frozen=True)
class UsageFigures:
    """The measured bytes a cost report needs (a day's values or a month's averages)."""

    database_bytes: float
    database_relation_bytes: float
    original_bytes: float
    referenced_bytes: float
    live_original_bytes: float
    variant_bytes: float
    variant_delivery_saved_bytes: float
    backup_bytes: float
    retention_deleted_bytes: float
    owner_count: float

    @classmethod
    def from_summaries(cls, summaries: pd.DataFrame) -> UsageFigures:
        """Average of the given usage_summaries rows (one row for a day, a month's rows for a month)."""
        if summaries.empty:
            raise ValueError("no usage snapshot for the period: materialize usage_snapshot first")
        return cls(**{name: float(summaries[name].astype(float).mean()) for name in USAGE_FIELDS})

    @property
    def object_storage_bytes(self) -> float:
        return self.original_bytes + self.variant_bytes + self.backup_bytes

    def before_bytes(self, base64_overhead: float) -> float:
        return self.referenced_bytes * base64_overhead + self.database_bytes


@dataclass(frozen=True)
class Coverage:
    """Which days a report's figures come from: a month report averages the month's daily snapshots."""

    first_snapshot: dt.date
    last_snapshot: dt.date
    snapshot_days: int
    period_days: int
    start_total_bytes: float  # everything stored (objects + base64 in rows) on the first snapshot
    end_total_bytes: float  # ... and on the last one

    @property
    def growth_bytes(self) -> float:
        return self.end_total_bytes - self.start_total_bytes

    @classmethod
    def of(cls, summaries: pd.DataFrame, first: dt.date, last: dt.date) -> Coverage:
        """From the usage_summaries rows of the period [first, last] (oldest first)."""
        if summaries.empty:
            raise ValueError("no usage snapshot for the period: materialize usage_snapshot first")
        totals = (
            summaries["original_bytes"].astype(float)
            + summaries["variant_bytes"].astype(float)
            + summaries["backup_bytes"].astype(float)
            + summaries["database_bytes"].astype(float)
        )
        dates = [_as_date(d) for d in summaries["snapshot_date"]]
        return cls(
            first_snapshot=min(dates),
            last_snapshot=max(dates),
            snapshot_days=len(set(dates)),
            period_days=(last - first).days + 1,
            start_total_bytes=float(totals.iloc[0]),
            end_total_bytes=float(totals.iloc[-1]),
        )

    @classmethod
    def single_day(cls, day: dt.date, total_bytes: float) -> Coverage:
        return cls(day, day, 1, 1, total_bytes, total_bytes)

    def sentence(self, period: str) -> str:
        """E.g. 'Averaged over 12 daily snapshots (2026-03-01 to 2026-03-12) of the month's 31 days.'"""
        if period == "day":
            return (
                f"Usage measured on {self.first_snapshot.isoformat()}; costs are that day's rate per month."
            )
        growth = gb(self.growth_bytes)
        span = (
            f"{self.first_snapshot.isoformat()} to {self.last_snapshot.isoformat()}"
            if self.snapshot_days > 1
            else self.first_snapshot.isoformat()
        )
        plural = "s" if self.snapshot_days != 1 else ""
        covered = (
            f"Averaged over {self.snapshot_days} daily snapshot{plural} ({span}) of the month's"
            f" {self.period_days} days (GB-months, as providers bill)"
        )
        if self.snapshot_days < 2:
            return covered + "; with one snapshot the month's growth is unknown."
        verb = "grew" if growth >= 0 else "shrank"
        return f"{covered}; storage {verb} by {size(abs(growth))} between the first and the last snapshot."


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass
class CostReport:
    period: str  # day | month
    period_start: dt.date
    # provider, label, scenario, gb, monthly_cost_usd, price..., configured, explanation
    providers: pd.DataFrame
    savings: pd.DataFrame  # cause, gb, monthly_usd, explanation
    projections: pd.DataFrame  # users, scenario, database_gb, object_storage_gb, monthly_cost_usd
    headline: dict[str, float]
    coverage: Coverage

    @property
    def current_monthly_usd(self) -> float:
        return self.headline["now_monthly_usd"]


def cost_phrase(price: Price, stored_gb: float) -> str:
    """How a provider's monthly cost for `stored_gb` comes about, e.g. '$5.00 fixed fee covering 250 GB'."""
    cost = price.monthly_cost(stored_gb)
    beyond = max(0.0, stored_gb - price.included_gb)
    per_gb = f"{unit_price(price.per_gb_month)}/GB-month"
    if price.base_monthly > 0:
        phrase = f"a fixed fee of {money(price.base_monthly)} a month covering {price.included_gb:,.0f} GB"
        if beyond > 0:
            phrase += f", plus {size(beyond)} beyond it at {per_gb}"
        return f"{phrase}, {money(cost)} in all"
    if price.included_gb > 0 and beyond == 0:
        return f"free, within the {price.included_gb:,.0f} GB included"
    if price.included_gb > 0:
        return f"{size(beyond)} beyond the {price.included_gb:,.0f} GB included at {per_gb}, {money(cost)}"
    return f"{size(stored_gb)} at {per_gb}, {money(cost)}"


def compute_cost_report(
    usage: UsageFigures,
    prices: PriceTable,
    period: str,
    period_start: dt.date,
    coverage: Coverage | None = None,
) -> CostReport:
    import pandas as pd

    obj, pg = prices.object_storage, prices.postgres
    db_gb = gb(usage.database_bytes)
    obj_gb = gb(usage.object_storage_bytes)
    before_gb = gb(usage.before_bytes(prices.base64_overhead))
    db_now_cost = pg.monthly_cost(db_gb)

    rows: list[dict[str, Any]] = []
    for price in prices.of("object_storage"):
        rows.append(
            {
                "provider": price.key,
                "label": price.label,
                "scenario": "now",
                "gb": obj_gb + db_gb,
                "monthly_cost_usd": price.monthly_cost(obj_gb) + db_now_cost,
                "price_per_gb_month": price.per_gb_month,
                "price_source_date": price.as_of,
                "is_configured_provider": price.key == obj.key,
                "explanation": (
                    f"{size(obj_gb)} of files on {price.label}: {cost_phrase(price, obj_gb)}; plus"
                    f" {size(db_gb)} of base64 still in the database on {pg.label}, {money(db_now_cost)}."
                ),
            }
        )
    for price in prices.of("postgres"):
        rows.append(
            {
                "provider": price.key,
                "label": price.label,
                "scenario": "base64_in_postgres",
                "gb": before_gb,
                "monthly_cost_usd": price.monthly_cost(before_gb),
                "price_per_gb_month": price.per_gb_month,
                "price_source_date": price.as_of,
                "is_configured_provider": price.key == pg.key,
                "explanation": (
                    f"{size(before_gb)} of base64 text (each referenced file as base64, plus what is still"
                    f" in rows) on {price.label}: {cost_phrase(price, before_gb)}."
                ),
            }
        )
    providers = pd.DataFrame(rows)

    overhead = prices.base64_overhead
    ref_gb = gb(usage.referenced_bytes)
    dedup_gb = gb(max(usage.referenced_bytes - usage.live_original_bytes, 0.0))
    delivery_gb = gb(usage.variant_delivery_saved_bytes) * prices.reads_per_object_per_month
    variant_gb = gb(usage.variant_bytes)
    retention_gb = gb(usage.retention_deleted_bytes)
    migration_usd = ref_gb * overhead * pg.per_gb_month - ref_gb * obj.per_gb_month
    dedup_usd = dedup_gb * obj.per_gb_month
    delivery_usd = delivery_gb * obj.egress_per_gb
    variant_usd = variant_gb * obj.per_gb_month
    retention_usd = retention_gb * obj.per_gb_month
    reads = prices.reads_per_object_per_month
    if delivery_gb <= 0:
        served = "No WebP/AVIF rendition is smaller than its original yet, so serving them saves no transfer"
    elif obj.egress_per_gb == 0:
        served = (
            f"Serving WebP/AVIF renditions instead of originals sends {size(delivery_gb)} less a month"
            f" ({reads:g} views per image assumed), which saves no money because {obj.label} does not"
            " charge for egress"
        )
    else:
        served = (
            f"Serving WebP/AVIF renditions instead of originals sends {size(delivery_gb)} less a month"
            f" ({reads:g} views per image assumed), {money(delivery_usd)} at"
            f" {unit_price(obj.egress_per_gb)}/GB egress"
        )
    net = delivery_usd - variant_usd
    savings = pd.DataFrame(
        [
            {
                "cause": "migration",
                "gb": ref_gb * overhead - ref_gb,
                "monthly_usd": migration_usd,
                "explanation": (
                    f"Keeping {size(ref_gb)} of files on {obj.label}"
                    f" ({unit_price(obj.per_gb_month)}/GB-month) instead of {size(ref_gb * overhead)}"
                    f" of base64 text on {pg.label}"
                    f" ({unit_price(pg.per_gb_month)}/GB-month) saves {money(migration_usd)} a month."
                ),
            },
            {
                "cause": "deduplication",
                "gb": dedup_gb,
                "monthly_usd": dedup_usd,
                "explanation": (
                    f"{size(dedup_gb)} of identical content referenced from several rows is stored once,"
                    f" which saves {money(dedup_usd)} a month on {obj.label}."
                    if dedup_gb > 0
                    else "No content is referenced from more than one row, so deduplication saves nothing."
                ),
            },
            {
                "cause": "webp_avif_variants",
                "gb": delivery_gb - variant_gb,
                "monthly_usd": net,
                "explanation": (
                    f"{served}; storing {size(variant_gb)} of variants costs {money(variant_usd)} a month,"
                    f" so variants {'save' if net >= 0 else 'cost'} {money(abs(net))} a month in all."
                ),
            },
            {
                "cause": "retention",
                "gb": retention_gb,
                "monthly_usd": retention_usd,
                "explanation": (
                    f"{size(retention_gb)} deleted by retention policies is no longer billed, which saves"
                    f" {money(retention_usd)} a month on {obj.label}."
                    if retention_gb > 0
                    else "Retention has deleted nothing yet, so it saves nothing."
                ),
            },
        ]
    )

    owners = max(usage.owner_count, 1.0)
    per_user_before = before_gb / owners
    per_user_obj = obj_gb / owners
    per_user_db = db_gb / owners
    projection_rows: list[dict[str, Any]] = []
    for users in PROJECTION_USERS:
        projection_rows.append(
            {
                "users": users,
                "scenario": "base64_in_postgres",
                "database_gb": per_user_before * users,
                "object_storage_gb": 0.0,
                "monthly_cost_usd": pg.monthly_cost(per_user_before * users),
            }
        )
        projection_rows.append(
            {
                "users": users,
                "scenario": "object_storage",
                "database_gb": per_user_db * users,
                "object_storage_gb": per_user_obj * users,
                "monthly_cost_usd": pg.monthly_cost(per_user_db * users)
                + obj.monthly_cost(per_user_obj * users),
            }
        )
    projections = pd.DataFrame(projection_rows)

    now_cost = obj.monthly_cost(obj_gb) + db_now_cost
    before_cost = pg.monthly_cost(before_gb)
    headline = {
        "now_monthly_usd": now_cost,
        "base64_in_postgres_monthly_usd": before_cost,
        "saving_pct": (1 - now_cost / before_cost) * 100 if before_cost > 0 else 0.0,
        "object_storage_gb": obj_gb,
        "database_gb": db_gb,
        "database_relation_gb": gb(usage.database_relation_bytes),
        "before_gb": before_gb,
        "owners": usage.owner_count,
        "budget_monthly_usd": prices.budget_monthly_usd,
    }
    if coverage is None:
        coverage = Coverage.single_day(period_start, usage.object_storage_bytes + usage.database_bytes)
    headline["snapshot_days"] = coverage.snapshot_days
    headline["period_days"] = coverage.period_days
    headline["growth_gb"] = gb(coverage.growth_bytes)
    return CostReport(period, period_start, providers, savings, projections, headline, coverage)


def headline_text(report: CostReport, prices: PriceTable) -> str:
    """One sentence: what storage costs now against what it would cost as base64 in Postgres."""
    h = report.headline
    return (
        f"Storage costs {money(h['now_monthly_usd'])} a month now ({size(h['object_storage_gb'])} on"
        f" {prices.object_storage.label} and {size(h['database_gb'])} still in the database), against"
        f" {money(h['base64_in_postgres_monthly_usd'])} a month as base64 in Postgres"
        f" ({size(h['before_gb'])} on {prices.postgres.label}): {percent_less(h['saving_pct'])} less."
    )
