"""Where analysts read the cost report: catalog tables, CSV files, and an HTML page with a PNG chart.

The tables are replaced delete-then-insert per (period, period_start) so reruns are idempotent. The HTML
page inlines its chart as a base64 PNG, so it opens on its own from a signed URL; the chart and the
analyst tables (CSV and Parquet: plain column names, money to the cent, GB to 3 decimals) are stored
next to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA
from core.keys import validate_key
from core.objectstore.base import ObjectStore, sha256_hex
from core.usage.costs import CostReport, cost_phrase
from core.usage.formatting import (
    money,
    number_text,
    percent_less,
    round_gb,
    round_money,
    round_pct,
    round_unit_price,
    size,
    unit_price,
    yes_no,
)
from core.usage.pricing import PriceTable, stale_prices

if TYPE_CHECKING:  # pandas and matplotlib load only where a report is computed, not in every step
    import pandas as pd
    from matplotlib.figure import Figure

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
        [
            {**base, **row}
            for row in report.providers.drop(columns=["label", "explanation"]).to_dict("records")
        ],
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


SCENARIO_WORDS = {
    "now": "Now (object storage)",
    "base64_in_postgres": "Before (base64 in Postgres)",
}
CAUSE_WORDS = {
    "migration": "Moving base64 out of Postgres",
    "deduplication": "Storing identical content once",
    "webp_avif_variants": "WebP/AVIF variants",
    "retention": "Retention policies",
}


def providers_table(report: CostReport) -> pd.DataFrame:
    """Cost by provider for analysts: plain column names, rounded figures, words rather than flags."""
    import pandas as pd

    p = report.providers.sort_values(["scenario", "monthly_cost_usd"], ascending=[False, True])
    return pd.DataFrame(
        {
            "Provider": p["label"].to_numpy(),
            "Scenario": [SCENARIO_WORDS.get(s, s) for s in p["scenario"]],
            "Configured for this platform": [yes_no(bool(v)) for v in p["is_configured_provider"]],
            "Stored GB": [round_gb(v) for v in p["gb"]],
            "Monthly cost (USD)": [round_money(v) for v in p["monthly_cost_usd"]],
            "Price per GB-month (USD)": [round_unit_price(v) for v in p["price_per_gb_month"]],
            "Price dated": [d.isoformat() for d in p["price_source_date"]],
            "How the cost comes about": p["explanation"].to_numpy(),
        }
    )


def savings_table(report: CostReport) -> pd.DataFrame:
    import pandas as pd

    s = report.savings
    return pd.DataFrame(
        {
            "Cause": [CAUSE_WORDS.get(c, c) for c in s["cause"]],
            "GB saved (negative: added)": [round_gb(v) for v in s["gb"]],
            "Monthly saving (USD, negative: a cost)": [round_money(v) for v in s["monthly_usd"]],
            "Explanation": s["explanation"].to_numpy(),
        }
    )


def projection_table(report: CostReport) -> pd.DataFrame:
    """Seed 000's cost-by-users table, from measured per-user usage."""
    import pandas as pd

    p = report.projections.pivot(index="users", columns="scenario")
    before_usd = p[("monthly_cost_usd", "base64_in_postgres")].to_numpy()
    now_usd = p[("monthly_cost_usd", "object_storage")].to_numpy()
    saving = [(1 - n / b) * 100 if b > 0 else 0.0 for n, b in zip(now_usd, before_usd, strict=True)]
    return pd.DataFrame(
        {
            "Users": p.index.to_numpy(),
            "Before: base64 in Postgres (GB)": [
                round_gb(v) for v in p[("database_gb", "base64_in_postgres")]
            ],
            "Before: monthly cost (USD)": [round_money(v) for v in before_usd],
            "Now: still in Postgres (GB)": [round_gb(v) for v in p[("database_gb", "object_storage")]],
            "Now: object storage (GB)": [round_gb(v) for v in p[("object_storage_gb", "object_storage")]],
            "Now: monthly cost (USD)": [round_money(v) for v in now_usd],
            "Saving (%)": [round_pct(v) for v in saving],
        }
    )


def prices_table(prices: PriceTable, on: dt.date) -> pd.DataFrame:
    import pandas as pd

    limit = dt.timedelta(days=prices.stale_after_days)
    return pd.DataFrame(
        [
            {
                "Provider": p.label,
                "Kind": "object storage" if p.category == "object_storage" else "Postgres host",
                "Price per GB-month (USD)": round_unit_price(p.per_gb_month),
                "Fixed monthly fee (USD)": round_money(p.base_monthly),
                "Included GB": p.included_gb,
                "Egress per GB (USD)": round_unit_price(p.egress_per_gb),
                "Price dated": p.as_of.isoformat(),
                "Older than the limit": yes_no(on - p.as_of > limit),
                "Source": p.source,
                "Note": p.note,
            }
            for p in prices.prices.values()
        ]
    )


def report_title(report: CostReport) -> str:
    if report.period == "month":
        return f"Storage cost report, {report.period_start.strftime('%B %Y')}"
    return f"Storage cost report, {report.period_start.strftime('%A %-d %B %Y')}"


def _tex_safe(text: str) -> str:
    """Matplotlib reads text between two `$` as math: escape them."""
    return text.replace("$", r"\$")


def _tick_money(value: float) -> str:
    return f"${value:,.0f}" if value >= 1 else money(value)


def _log_axis_money(axis: Any, values: list[float]) -> None:
    """A log axis labelled in dollars, bounded by the positive values (no band below zero)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v > 0] or [0.01]
    low, high = min(positive), max(positive)
    axis.set_xscale("log")
    axis.set_xlim(10 ** math.floor(math.log10(low) - 0.3), 10 ** math.ceil(math.log10(high) + 0.6))
    axis.xaxis.set_major_locator(LogLocator(base=10))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _tex_safe(_tick_money(v))))
    axis.xaxis.set_minor_formatter(NullFormatter())


def render_chart(report: CostReport, prices: PriceTable | None = None) -> bytes:
    """The chart as PNG bytes (see chart_figure)."""
    fig = chart_figure(report, prices)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_figure(report: CostReport, prices: PriceTable | None = None) -> Figure:
    """A figure with two panels that read at any scale (demo or terabytes).

    Left: before (base64 in Postgres) vs now (object storage + what is left in Postgres) on the configured
    setup, for the measured usage and for each projected number of users; a log axis with every value
    written on its bar, so $0.0003 against $0.02 is as visible as $300 against $20,000. Right: each
    provider's per-GB price, with fixed fees and included GB written beside it rather than mixed into
    the cost (a $5 base fee otherwise dwarfs the per-GB comparison at small volumes).

    A bare `Figure` (no pyplot state, thread-safe) imported here: matplotlib costs a second of start-up
    that every other step process would pay for nothing.
    """
    from matplotlib.figure import Figure

    h = report.headline
    projection = report.projections.pivot(index="users", columns="scenario")["monthly_cost_usd"]
    scenarios = [
        (f"measured ({h['owners']:,.0f} owners)", h["base64_in_postgres_monthly_usd"], h["now_monthly_usd"])
    ]
    scenarios += [
        (f"{users:,} users", float(row["base64_in_postgres"]), float(row["object_storage"]))
        for users, row in projection.iterrows()
    ]
    fig = Figure(figsize=(13, 5.2), dpi=100)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})

    n = len(scenarios)
    ys = list(range(n))[::-1]
    values = [v for _, before, now in scenarios for v in (before, now)]
    _log_axis_money(left, values)
    floor = left.get_xlim()[0]
    for y, (_label, before, now) in zip(ys, scenarios, strict=True):
        for offset, value, color in ((0.2, before, "#c0392b"), (-0.2, now, "#2471a3")):
            width = max(value, floor) - floor
            left.barh(y + offset, width, left=floor, height=0.38, color=color)
            left.annotate(
                _tex_safe(money(value)),
                (max(value, floor), y + offset),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
    left.set_yticks(ys, [label for label, _, _ in scenarios])
    left.set_xlabel("USD per month (log scale)")
    left.set_title("Before (red: base64 in Postgres) vs now (blue: object storage)", fontsize=11)
    left.grid(axis="x", which="major", alpha=0.3)

    providers = report.providers.drop_duplicates("provider").sort_values("price_per_gb_month")
    by_key = prices.prices if prices is not None else {}
    labels, per_gb, colors, notes = [], [], [], []
    for row in providers.itertuples():
        labels.append(row.label + (" (configured)" if row.is_configured_provider else ""))
        per_gb.append(float(row.price_per_gb_month))
        colors.append("#c0392b" if row.scenario == "base64_in_postgres" else "#2471a3")
        price = by_key.get(row.provider)
        extra = []
        if price is not None and price.base_monthly > 0:
            extra.append(f"+ {money(price.base_monthly)}/month fixed")
        if price is not None and price.included_gb > 0:
            extra.append(f"{price.included_gb:,.0f} GB included")
        notes.append(
            f"{unit_price(float(row.price_per_gb_month))}/GB" + (f"  ({', '.join(extra)})" if extra else "")
        )
    ys = list(range(len(labels)))
    right.barh(ys, per_gb, color=colors, height=0.6)
    for y, value, note in zip(ys, per_gb, notes, strict=True):
        right.annotate(
            _tex_safe(note), (value, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8
        )
    right.set_yticks(ys, labels, fontsize=8)
    right.set_xlim(0, max(per_gb) * 2.4)
    right.set_xlabel("USD per GB-month (red: Postgres hosts)")
    right.set_title("Price per GB-month; fixed fees beside the bars", fontsize=11)
    right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _table_html(frame: pd.DataFrame) -> str:
    """A plain table: numbers right-aligned and printed as rounded (no float noise), text left-aligned."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="n">{number_text(float(value))}</td>')
            elif _DATE.fullmatch(str(value)):
                cells.append(f'<td class="d">{value}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="t"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_html(
    report: CostReport,
    prices: PriceTable,
    chart_png: bytes,
    *,
    generated: dt.datetime | None = None,
    downloads: dict[str, str] | None = None,
) -> str:
    h = report.headline
    chart = base64.b64encode(chart_png).decode("ascii")
    title = report_title(report)
    warnings = stale_prices(prices, report.coverage.last_snapshot)
    warning_html = (
        f'<details class="warn"><summary><b>Prices to re-check:</b> {len(warnings)} of the prices this report'
        f" uses were read more than {prices.stale_after_days} days before it; the figures may be out of"
        " date. Re-read them at their sources and update config/pricing.yaml.</summary><ul>"
        + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        + "</ul></details>"
        if warnings
        else ""
    )
    saving = percent_less(h["saving_pct"])
    over_budget = h["now_monthly_usd"] > h["budget_monthly_usd"]
    budget = (
        f"above the budget of {money(h['budget_monthly_usd'])} a month"
        if over_budget
        else f"within the budget of {money(h['budget_monthly_usd'])} a month"
    )
    generated_at = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    links = (
        '<p id="downloads">Download the tables: '
        + ", ".join(
            f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in downloads.items()
        )
        + ".</p>"
        if downloads
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em auto;
max-width:1320px;padding:0 1em;color:#1c2833;line-height:1.45}}
h1{{font-size:1.6em;margin-bottom:.2em}} h2{{font-size:1.2em;margin-top:1.6em}}
#headline{{font-size:1.35em;margin:.6em 0;max-width:60em}}
#headline .now{{color:#2471a3;font-weight:700}} #headline .before{{color:#c0392b;font-weight:700}}
.sub{{color:#566573}} .warn{{background:#fef5e7;border-left:4px solid #e67e22;padding:.5em 1em;margin:1em 0}}
#chart{{max-width:100%;height:auto;border:1px solid #eee}}
table.t{{border-collapse:collapse;font-size:.92em}}
table.t td,table.t th{{padding:4px 10px;border-bottom:1px solid #ddd;vertical-align:top}}
table.t th{{text-align:left;background:#f4f6f7}}
table.t td.n{{text-align:right;white-space:nowrap}} table.t td.d{{white-space:nowrap}}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p id="headline">Storage costs <span class="now">{money(h["now_monthly_usd"])} a month</span> now,
against <span class="before">{money(h["base64_in_postgres_monthly_usd"])} a month</span> if the files were
still base64 in Postgres: {saving} less.</p>
<p class="sub">Now: {size(h["object_storage_gb"])} on {html.escape(prices.object_storage.label)}
({html.escape(cost_phrase(prices.object_storage, h["object_storage_gb"]))}) and
{size(h["database_gb"])} of base64 still in the database on {html.escape(prices.postgres.label)}
({html.escape(cost_phrase(prices.postgres, h["database_gb"]))}).
Before: {size(h["before_gb"])} of base64 on {html.escape(prices.postgres.label)}
({html.escape(cost_phrase(prices.postgres, h["before_gb"]))}).
The cost now is {budget}.<br>{html.escape(report.coverage.sentence(report.period))}</p>
{warning_html}
<img id="chart" alt="Monthly cost before vs now, and price per GB by provider"
 src="data:image/png;base64,{chart}">
<h2>Savings by cause (per month, at marginal per-GB prices)</h2>{_table_html(savings_table(report))}
<h2>Cost by provider for the measured usage</h2>{_table_html(providers_table(report))}
<h2>Projection from the measured usage per owner ({h["owners"]:,.0f} owners measured)</h2>
{_table_html(projection_table(report))}
<h2>Price table</h2>
<p class="sub">Prices older than {prices.stale_after_days} days at the report's date are flagged; every
price keeps the date and the page it was read from.</p>
{_table_html(prices_table(prices, report.coverage.last_snapshot))}
<p class="sub">Money is rounded to the cent, or to two significant figures below a cent; prices per GB
are shown as listed. Generated
{generated_at}. The same tables are stored beside this page as CSV and Parquet.</p>
{links}
</body></html>"""


def analyst_tables(report: CostReport, prices: PriceTable) -> dict[str, pd.DataFrame]:
    """The tables written beside the page (CSV and Parquet), by file name."""
    return {
        "providers": providers_table(report),
        "savings": savings_table(report),
        "projections": projection_table(report),
        "prices": prices_table(prices, report.coverage.last_snapshot),
    }


def _parquet(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


@dataclass(frozen=True)
class PublishedReport:
    html_key: str
    chart_key: str
    csv_keys: tuple[str, ...]
    parquet_keys: tuple[str, ...]
    signed_url: str
    chart_png: bytes


def publish_report(
    store: ObjectStore, report: CostReport, prices: PriceTable, url_ttl_seconds: int = 7 * 24 * 3600
) -> PublishedReport:
    """Store the page, its chart and the tables (CSV, Parquet) under reports/cost/<period>/<start>/.

    The page links each table by its own signed URL (a relative link would carry no signature), so the
    downloads work wherever the page itself opens, for as long as its link does.
    """
    prefix = f"reports/cost/{report.period}/{report.period_start.isoformat()}"
    chart = render_chart(report, prices)
    tables: list[tuple[str, bytes, str]] = []
    for name, frame in analyst_tables(report, prices).items():
        tables.append((f"{prefix}/{name}.csv", frame.to_csv(index=False).encode(), "text/csv"))
        tables.append((f"{prefix}/{name}.parquet", _parquet(frame), "application/vnd.apache.parquet"))
    downloads = {key.rsplit("/", 1)[-1]: store.signed_url(key, url_ttl_seconds) for key, _, _ in tables}
    page = render_html(report, prices, chart, downloads=downloads).encode("utf-8")
    files: list[tuple[str, bytes, str]] = [
        (f"{prefix}/report.html", page, "text/html; charset=utf-8"),
        (f"{prefix}/chart.png", chart, "image/png"),
        *tables,
    ]
    for key, data, content_type in files:
        store.put_bytes(validate_key(key), data, sha256=sha256_hex(data), content_type=content_type)
    return PublishedReport(
        html_key=files[0][0],
        chart_key=files[1][0],
        csv_keys=tuple(f[0] for f in tables if f[0].endswith(".csv")),
        parquet_keys=tuple(f[0] for f in tables if f[0].endswith(".parquet")),
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
