"""Usage snapshots and cost reports: daily usage per owner/kind/location with quotas, daily and monthly
cost reports from the configured price table, and WARN checks for quota, growth and budget.

Thin wiring: the SQL lives in core/usage/snapshot.py, the money in core/usage/costs.py and the files in
core/usage/report.py. Checks are declared on the assets and evaluated in the same run, for the same
partition, from the figures the run just computed.
"""

import base64
import datetime as dt
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.automation import after_upstreams
from assets.backups import DATABASE_BACKUP_KEY, OBJECT_BACKUP_KEY
from assets.partitions import daily_partitions, monthly_partitions
from assets.retention import RETENTION_SWEEP_KEY
from assets.sources import LEGACY_KEYS, OWNER
from core.sources import load_sources_config
from core.usage.costs import CostReport, Coverage, UsageFigures, compute_cost_report, headline_text
from core.usage.formatting import money, round_gb, round_money, round_pct
from core.usage.pricing import PriceTable, gb, load_price_table, stale_prices
from core.usage.quotas import load_quota_config
from core.usage.report import (
    projection_table,
    providers_table,
    publish_report,
    savings_table,
    write_cost_tables,
)
from core.usage.snapshot import load_summaries, take_usage_snapshot
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

if TYPE_CHECKING:  # pandas loads only where a report is computed, not in every step process
    import pandas as pd

GROUP = "usage"

USAGE_SNAPSHOT_KEY = AssetKey(["usage", "usage_snapshot"])
DAILY_COST_REPORT_KEY = AssetKey(["usage", "daily_costs"])
MONTHLY_COST_REPORT_KEY = AssetKey(["usage", "monthly_costs"])

#: Check names (module constants so sensors, tests and the UI agree on them).
OWNER_QUOTA_CHECK = "owners_within_quota"
GROWTH_RATE_CHECK = "storage_growth_within_limit"
BUDGET_CHECK = "monthly_cost_within_budget"

#: The snapshot reads the app's tables, the backups and what retention left; backups and retention come
#: after every asset that writes objects (migrations, uploads, variants), so the snapshot follows all of
#: them without drawing an edge from each. The automation runs it after the backups or the sweep.
AFTER_BACKUPS_AND_RETENTION = [DATABASE_BACKUP_KEY, OBJECT_BACKUP_KEY, RETENTION_SWEEP_KEY]


class CostReportConfig(Config):
    publish_files: bool = Field(
        default=True, description="Store the HTML/PNG/CSV report in object storage and sign a URL"
    )


def _md_table(frame: "pd.DataFrame", floatfmt: str = "g") -> MetadataValue:
    """Already-rounded analyst frames print as they are ("g" keeps $0.00031 and 12,345.67 exact)."""
    if frame.empty:
        return MetadataValue.md("_none_")
    return MetadataValue.md(frame.to_markdown(index=False, floatfmt=floatfmt))


def _mb(frame: "pd.DataFrame", columns: list[str]) -> "pd.DataFrame":
    shaped = frame.copy()
    for column in columns:
        shaped[column] = shaped[column].astype(float) / 1e6
        shaped = shaped.rename(columns={column: f"{column.removesuffix('_bytes')} MB"})
    return shaped


@asset(
    key=USAGE_SNAPSHOT_KEY,
    partitions_def=daily_partitions,
    deps=[*LEGACY_KEYS, *AFTER_BACKUPS_AND_RETENTION],
    automation_condition=after_upstreams(
        "after the day's backups or retention sweep", only=AFTER_BACKUPS_AND_RETENTION
    ),
    group_name=GROUP,
    owners=[OWNER],
    kinds={"postgres", "sql"},
    description=(
        "Daily usage per owner, kind and location (base64 in the database, originals, variants, backups)"
        " in media_catalog.usage_snapshots, owner quotas in owner_quotas, platform totals, orphans,"
        " largest files and growth in usage_summaries."
    ),
    check_specs=[
        AssetCheckSpec(
            OWNER_QUOTA_CHECK,
            asset=USAGE_SNAPSHOT_KEY,
            description="No owner above the warn fraction (80 %) of their tier's quota",
        ),
        AssetCheckSpec(
            GROWTH_RATE_CHECK,
            asset=USAGE_SNAPSHOT_KEY,
            description="Storage grows slower than"
            " the configured GB/hour (peak hour of the day, and the day-over-day rate)",
        ),
    ],
)
def usage_snapshot(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
    import pandas as pd

    day = dt.date.fromisoformat(context.partition_key)
    quotas = load_quota_config()
    sources = load_sources_config()
    with postgres.engine().begin() as conn:
        result = take_usage_snapshot(conn, day, sources, quotas)
    s = result.summary

    over = result.over_quota
    quota_check = AssetCheckResult(
        check_name=OWNER_QUOTA_CHECK,
        passed=over.empty,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{len(over)} owner(s) above {quotas.quota_warn_fraction:.0%} of quota"
            if not over.empty
            else f"every owner is within {quotas.quota_warn_fraction:.0%} of quota"
        ),
        metadata={
            "owners_over": len(over),
            "owners": _md_table(_mb(over, ["used_bytes", "quota_bytes"]), ",.2f"),
        },
    )
    peak_gb_hour = gb(s["peak_hour_bytes"])
    growth_gb_day = gb(s["growth_bytes_per_day"]) if s["growth_bytes_per_day"] is not None else None
    rate = max(peak_gb_hour, (growth_gb_day or 0.0) / 24)
    growth_check = AssetCheckResult(
        check_name=GROWTH_RATE_CHECK,
        passed=rate <= quotas.growth_gb_per_hour,
        severity=AssetCheckSeverity.WARN,
        description=f"storage grew at up to {rate:.3f} GB/hour (limit {quotas.growth_gb_per_hour} GB/hour)",
        metadata={
            "peak_hour_gb": peak_gb_hour,
            "growth_gb_per_day": growth_gb_day if growth_gb_day is not None else 0.0,
            "limit_gb_per_hour": quotas.growth_gb_per_hour,
        },
    )
    largest = pd.DataFrame(s["largest_files"])
    metadata: dict[str, Any] = {
        "database_mb": round(s["database_bytes"] / 1e6, 3),
        "database_relation_mb": round(s["database_relation_bytes"] / 1e6, 3),
        "originals_mb": round(s["original_bytes"] / 1e6, 3),
        "variants_mb": round(s["variant_bytes"] / 1e6, 3),
        "backups_mb": round(s["backup_bytes"] / 1e6, 3),
        "object_storage_mb": round(result.object_storage_bytes / 1e6, 3),
        "original_count": s["original_count"],
        "variant_count": s["variant_count"],
        "orphan_count": s["orphan_count"],
        "owner_count": s["owner_count"],
        "owners_over_quota": len(over),
        "growth_gb_per_day": round_gb(growth_gb_day) if growth_gb_day is not None else 0.0,
        "peak_hour_gb": round_gb(peak_gb_hour),
        "by_location": _md_table(_mb(result.by_location, ["bytes"]), ",.3f"),
        "fullest_owners": _md_table(_mb(result.top_owners, ["used_bytes", "quota_bytes"]), ",.3f"),
        "largest_files": _md_table(_mb(largest, ["size_bytes"]) if not largest.empty else largest, ",.3f"),
        "source_tables_total_relation_bytes": MetadataValue.json(result.relation_sizes),
    }
    context.log.info(
        f"usage {day}: {result.object_storage_bytes / 1e6:,.1f} MB in object storage,"
        f" {s['database_bytes'] / 1e6:,.1f} MB base64 in the database, {s['orphan_count']} orphans"
    )
    return MaterializeResult(metadata=metadata, check_results=[quota_check, growth_check])


def _budget_check(asset_key: AssetKey, report: CostReport, prices: PriceTable) -> AssetCheckResult:
    cost = report.current_monthly_usd
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=BUDGET_CHECK,
        passed=cost <= prices.budget_monthly_usd,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{money(cost)} a month now against a budget of {money(prices.budget_monthly_usd)} a month"
        ),
        metadata={
            "monthly_cost_usd": round_money(cost),
            "budget_monthly_usd": round_money(prices.budget_monthly_usd),
        },
    )


def _cost_report(
    context: AssetExecutionContext,
    config: CostReportConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
    period: str,
    first: dt.date,
    last: dt.date,
    asset_key: AssetKey,
) -> MaterializeResult:
    prices = load_price_table()
    with postgres.engine().begin() as conn:
        summaries = load_summaries(conn, first, last)
        if summaries.empty:
            raise Failure(f"no usage snapshot between {first} and {last}: materialize usage_snapshot first")
        coverage = Coverage.of(summaries, first, last)
        report = compute_cost_report(UsageFigures.from_summaries(summaries), prices, period, first, coverage)
        write_cost_tables(conn, report)
    h = report.headline
    stale = stale_prices(prices, coverage.last_snapshot)
    metadata: dict[str, Any] = {
        "headline": headline_text(report, prices),
        "now_monthly_usd": round_money(h["now_monthly_usd"]),
        "base64_in_postgres_monthly_usd": round_money(h["base64_in_postgres_monthly_usd"]),
        "saving_pct": round_pct(h["saving_pct"]),
        "object_storage_gb": round_gb(h["object_storage_gb"]),
        "database_gb": round_gb(h["database_gb"]),
        "days_covered": MetadataValue.text(coverage.sentence(period)),
        "snapshots_averaged": coverage.snapshot_days,
        "days_in_period": coverage.period_days,
        "growth_gb": round_gb(h["growth_gb"]),
        "stale_prices": len(stale),
        "savings_by_cause": _md_table(savings_table(report)),
        "cost_by_provider": _md_table(providers_table(report).drop(columns=["How the cost comes about"])),
        "projection": _md_table(projection_table(report)),
    }
    if stale:
        metadata["price_warnings"] = MetadataValue.md("\n".join(f"- {w}" for w in stale))
        context.log.warning(f"{len(stale)} price(s) to re-check in config/pricing.yaml: " + " ".join(stale))
    for cause, usd in zip(report.savings["cause"], report.savings["monthly_usd"], strict=True):
        metadata[f"saving_{cause}_usd"] = round_money(float(usd))
    if config.publish_files:
        published = publish_report(object_store.store(), report, prices)
        metadata["report_url"] = MetadataValue.url(published.signed_url)
        metadata["report_key"] = published.html_key
        metadata["parquet_keys"] = MetadataValue.json(list(published.parquet_keys))
        chart = base64.b64encode(published.chart_png).decode("ascii")
        metadata["chart"] = MetadataValue.md(f"![cost chart](data:image/png;base64,{chart})")
    context.log.info(headline_text(report, prices))
    return MaterializeResult(metadata=metadata, check_results=[_budget_check(asset_key, report, prices)])


@asset(
    key=DAILY_COST_REPORT_KEY,
    partitions_def=daily_partitions,
    deps=[USAGE_SNAPSHOT_KEY],
    automation_condition=after_upstreams("after the usage snapshot"),
    group_name=GROUP,
    owners=[OWNER],
    kinds={"postgres", "pandas", "html"},
    description=(
        "The day's storage cost at its run rate per month: every provider in config/pricing.yaml, base64 in"
        " Postgres vs now, savings by cause, projections by users (media_catalog.cost_reports,"
        " cost_savings, cost_projections; HTML/PNG/CSV under reports/cost/day/ in object storage)."
    ),
    check_specs=[
        AssetCheckSpec(
            BUDGET_CHECK,
            asset=DAILY_COST_REPORT_KEY,
            description="Monthly cost (at today's usage) within the configured budget",
        )
    ],
)
def daily_cost_report(
    context: AssetExecutionContext,
    config: CostReportConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    return _cost_report(context, config, postgres, object_store, "day", day, day, DAILY_COST_REPORT_KEY)


@asset(
    key=MONTHLY_COST_REPORT_KEY,
    partitions_def=monthly_partitions,
    deps=[USAGE_SNAPSHOT_KEY],
    automation_condition=after_upstreams("after the usage snapshot"),
    group_name=GROUP,
    owners=[OWNER],
    kinds={"postgres", "pandas", "html"},
    description=(
        "The month's storage cost from the average of its daily snapshots (GB-months, as providers bill),"
        " with the same breakdowns as the daily report (reports/cost/month/ in object storage)."
    ),
    check_specs=[
        AssetCheckSpec(
            BUDGET_CHECK,
            asset=MONTHLY_COST_REPORT_KEY,
            description="The month's cost within the configured budget",
        )
    ],
)
def monthly_cost_report(
    context: AssetExecutionContext,
    config: CostReportConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    first = dt.date.fromisoformat(context.partition_key)
    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return _cost_report(
        context, config, postgres, object_store, "month", first, last, MONTHLY_COST_REPORT_KEY
    )


usage_assets = [usage_snapshot, daily_cost_report, monthly_cost_report]
