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

from core.usage.pricing import PriceTable, gb

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


@dataclass
class CostReport:
    period: str  # day | month
    period_start: dt.date
    providers: pd.DataFrame  # provider, label, scenario, gb, monthly_cost_usd, price..., configured
    savings: pd.DataFrame  # cause, gb, monthly_usd, explanation
    projections: pd.DataFrame  # users, scenario, database_gb, object_storage_gb, monthly_cost_usd
    headline: dict[str, float]

    @property
    def current_monthly_usd(self) -> float:
        return self.headline["now_monthly_usd"]


def compute_cost_report(
    usage: UsageFigures, prices: PriceTable, period: str, period_start: dt.date
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
            }
        )
    providers = pd.DataFrame(rows)

    overhead = prices.base64_overhead
    ref_gb = gb(usage.referenced_bytes)
    dedup_gb = gb(max(usage.referenced_bytes - usage.live_original_bytes, 0.0))
    delivery_gb = gb(usage.variant_delivery_saved_bytes) * prices.reads_per_object_per_month
    variant_gb = gb(usage.variant_bytes)
    retention_gb = gb(usage.retention_deleted_bytes)
    savings = pd.DataFrame(
        [
            {
                "cause": "migration",
                "gb": ref_gb * overhead - ref_gb,
                "monthly_usd": ref_gb * overhead * pg.per_gb_month - ref_gb * obj.per_gb_month,
                "explanation": f"{ref_gb:.3f} GB as base64 on {pg.label} vs as files on {obj.label}",
            },
            {
                "cause": "deduplication",
                "gb": dedup_gb,
                "monthly_usd": dedup_gb * obj.per_gb_month,
                "explanation": "identical content referenced from several rows is stored once",
            },
            {
                "cause": "webp_avif_variants",
                "gb": delivery_gb - variant_gb,
                "monthly_usd": delivery_gb * obj.egress_per_gb - variant_gb * obj.per_gb_month,
                "explanation": (
                    f"{delivery_gb:.3f} GB/month less served ({prices.reads_per_object_per_month:g} reads per"
                    f" image at ${obj.egress_per_gb}/GB egress) minus {variant_gb:.3f} GB of variants stored"
                ),
            },
            {
                "cause": "retention",
                "gb": retention_gb,
                "monthly_usd": retention_gb * obj.per_gb_month,
                "explanation": "objects and variants deleted by retention policies no longer billed",
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
    return CostReport(period, period_start, providers, savings, projections, headline)


def headline_text(report: CostReport, prices: PriceTable) -> str:
    h = report.headline
    return (
        f"${h['base64_in_postgres_monthly_usd']:,.2f}/month as base64 in Postgres ({prices.postgres.label},"
        f" {h['before_gb']:.3f} GB) vs ${h['now_monthly_usd']:,.2f}/month now ({prices.object_storage.label}"
        f" {h['object_storage_gb']:.3f} GB + database {h['database_gb']:.3f} GB)"
    )
