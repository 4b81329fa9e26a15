"""Where analysts read the cost report: catalog tables, CSV files, and an HTML page with a PNG chart.

The tables are replaced delete-then-insert per (period, period_start) so reruns are idempotent. The HTML
page inlines its chart as a base64 PNG, so it opens on its own from a signed URL; the chart and CSVs are
also stored next to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA
from core.keys import validate_key
from core.objectstore.base import ObjectStore, sha256_hex
from core.usage.costs import CostReport
from core.usage.pricing import PriceTable

if TYPE_CHECKING:  # pandas loads only where a report is computed, not in every step process
    import pandas as pd

C = CATALOG_SCHEMA


def write_cost_tables(conn: sa.Connection, report: CostReport) -> None:
    """Replace the period's rows in cost_reports, cost_savings and cost_projections."""
    key = {"period": report.period, "start": report.period_start}
    for table in ("cost_reports", "cost_savings", "cost_projections"):
        conn.execute(
            sa.text(f"DELETE FROM {C}.{table} WHERE period = :period AND period_start = :start"), key
        )
    base = {"period": report.period, "period_start": report.period_start}
    conn.execute(
        sa.text(f"""INSERT INTO {C}.cost_reports (period, period_start, provider, scenario, gb,
                monthly_cost_usd, price_per_gb_month, price_source_date, is_configured_provider)
            VALUES (:period, :period_start, :provider, :scenario, :gb, :monthly_cost_usd,
                :price_per_gb_month, :price_source_date, :is_configured_provider)"""),
        [{**base, **row} for row in report.providers.drop(columns=["label"]).to_dict("records")],
    )
    conn.execute(
        sa.text(f"""INSERT INTO {C}.cost_savings (period, period_start, cause, gb, monthly_usd, explanation)
            VALUES (:period, :period_start, :cause, :gb, :monthly_usd, :explanation)"""),
        [{**base, **row} for row in report.savings.to_dict("records")],
    )
    conn.execute(
        sa.text(f"""INSERT INTO {C}.cost_projections (period, period_start, users, scenario, database_gb,
                object_storage_gb, monthly_cost_usd)
            VALUES (:period, :period_start, :users, :scenario, :database_gb, :object_storage_gb,
                :monthly_cost_usd)"""),
        [{**base, **row} for row in report.projections.to_dict("records")],
    )


def projection_table(report: CostReport) -> pd.DataFrame:
    """Seed 000's cost-by-users table, from measured per-user usage."""
    import pandas as pd

    p = report.projections.pivot(index="users", columns="scenario")
    table = pd.DataFrame(
        {
            "users": p.index,
            "base64 in Postgres GB": p[("database_gb", "base64_in_postgres")].to_numpy(),
            "base64 in Postgres $/mo": p[("monthly_cost_usd", "base64_in_postgres")].to_numpy(),
            "DB GB now": p[("database_gb", "object_storage")].to_numpy(),
            "object storage GB": p[("object_storage_gb", "object_storage")].to_numpy(),
            "object storage + DB $/mo": p[("monthly_cost_usd", "object_storage")].to_numpy(),
        }
    )
    before = table["base64 in Postgres $/mo"]
    table["saving %"] = (1 - table["object storage + DB $/mo"] / before.where(before > 0)).fillna(0) * 100
    return table


def render_chart(report: CostReport) -> bytes:
    """PNG: monthly cost per provider now vs as base64 in Postgres, and the projection by users.

    A bare `Figure` (no pyplot state, thread-safe) imported here: matplotlib costs a second of start-up
    that every other step process would pay for nothing.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), dpi=100)
    left, right = fig.subplots(1, 2)
    providers = report.providers.sort_values(["scenario", "monthly_cost_usd"])
    colors = ["#d62728" if s == "base64_in_postgres" else "#1f77b4" for s in providers["scenario"]]
    left.barh(providers["label"], providers["monthly_cost_usd"], color=colors)
    left.set_xlabel("USD per month")
    left.set_title("Monthly storage cost (red: as base64 in Postgres)")
    left.tick_params(axis="y", labelsize=7)
    projections = projection_table(report)
    right.plot(
        projections["users"],
        projections["base64 in Postgres $/mo"],
        "o-",
        color="#d62728",
        label="base64 in Postgres",
    )
    right.plot(
        projections["users"],
        projections["object storage + DB $/mo"],
        "o-",
        color="#1f77b4",
        label="object storage + DB",
    )
    right.set_xscale("log")
    right.set_yscale("symlog", linthresh=1)
    right.set_xlabel("users")
    right.set_ylabel("USD per month")
    right.set_title("Projection from measured per-user usage")
    right.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:,.4f}", border=0, classes="t")


def render_html(report: CostReport, prices: PriceTable, chart_png: bytes) -> str:
    import pandas as pd

    h = report.headline
    prices_frame = pd.DataFrame(
        [
            {
                "provider": p.label,
                "USD/GB-month": p.per_gb_month,
                "base USD/month": p.base_monthly,
                "included GB": p.included_gb,
                "price as of": p.as_of.isoformat(),
                "source": p.source,
                "note": p.note,
            }
            for p in prices.prices.values()
        ]
    )
    chart = base64.b64encode(chart_png).decode("ascii")
    title = f"Storage cost report ({report.period} from {report.period_start.isoformat()})"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table.t{{border-collapse:collapse}}
table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p><b>Cost per month as base64 in Postgres: ${h["base64_in_postgres_monthly_usd"]:,.2f}</b>
({h["before_gb"]:.3f} GB on {html.escape(prices.postgres.label)})
<br><b>Cost per month now: ${h["now_monthly_usd"]:,.2f}</b>
({h["object_storage_gb"]:.3f} GB on {html.escape(prices.object_storage.label)}, {h["database_gb"]:.3f} GB
still in the database) &mdash; saving {h["saving_pct"]:.1f} %.
Budget ${h["budget_monthly_usd"]:,.2f}/month.</p>
<img id="chart" alt="monthly cost chart" src="data:image/png;base64,{chart}">
<h2>Cost by provider</h2>{_table_html(report.providers)}
<h2>Savings by cause (per month, marginal prices)</h2>{_table_html(report.savings)}
<h2>Projection from measured per-user usage ({h["owners"]:.0f} owners measured)</h2>
{_table_html(projection_table(report))}
<h2>Price table</h2>{_table_html(prices_frame)}
<p>Generated {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}.</p>
</body></html>"""


@dataclass(frozen=True)
class PublishedReport:
    html_key: str
    chart_key: str
    csv_keys: tuple[str, ...]
    signed_url: str
    chart_png: bytes


def publish_report(
    store: ObjectStore, report: CostReport, prices: PriceTable, url_ttl_seconds: int = 7 * 24 * 3600
) -> PublishedReport:
    """Store the HTML page, its chart and the CSVs under reports/cost/<period>/<start>/; sign the page."""
    prefix = f"reports/cost/{report.period}/{report.period_start.isoformat()}"
    chart = render_chart(report)
    page = render_html(report, prices, chart).encode("utf-8")
    files: list[tuple[str, bytes, str]] = [
        (f"{prefix}/report.html", page, "text/html; charset=utf-8"),
        (f"{prefix}/chart.png", chart, "image/png"),
        (f"{prefix}/providers.csv", report.providers.to_csv(index=False).encode(), "text/csv"),
        (f"{prefix}/savings.csv", report.savings.to_csv(index=False).encode(), "text/csv"),
        (f"{prefix}/projections.csv", projection_table(report).to_csv(index=False).encode(), "text/csv"),
    ]
    for key, data, content_type in files:
        store.put_bytes(validate_key(key), data, sha256=sha256_hex(data), content_type=content_type)
    return PublishedReport(
        html_key=files[0][0],
        chart_key=files[1][0],
        csv_keys=tuple(f[0] for f in files[2:]),
        signed_url=store.signed_url(files[0][0], url_ttl_seconds),
        chart_png=chart,
    )


def read_headline(conn: sa.Connection, period: str, period_start: dt.date) -> dict[str, float] | None:
    """The stored report's headline: monthly cost on the configured setup now vs as base64 in Postgres."""
    rows = conn.execute(
        sa.text(f"""SELECT scenario, gb, monthly_cost_usd FROM {C}.cost_reports
            WHERE period = :p AND period_start = :s AND is_configured_provider"""),
        {"p": period, "s": period_start},
    ).all()
    by_scenario = {r[0]: (float(r[1]), float(r[2])) for r in rows}
    if "now" not in by_scenario or "base64_in_postgres" not in by_scenario:
        return None
    now_gb, now_usd = by_scenario["now"]
    before_gb, before_usd = by_scenario["base64_in_postgres"]
    summary = conn.execute(
        sa.text(f"""SELECT s.owner_count, s.orphan_count,
                (SELECT count(*) FROM {C}.owner_quotas q
                 WHERE q.snapshot_date = s.snapshot_date AND q.used_fraction > 0.8) AS near_quota
            FROM {C}.usage_summaries s WHERE s.snapshot_date = :s"""),
        {"s": period_start},
    ).one_or_none()
    return {
        "now_monthly_usd": now_usd,
        "now_gb": now_gb,
        "base64_in_postgres_monthly_usd": before_usd,
        "before_gb": before_gb,
        "owners": float(summary[0]) if summary else 0.0,
        "orphans": float(summary[1]) if summary else 0.0,
        "owners_above_80pct": float(summary[2]) if summary else 0.0,
    }
