"""The cost report as an analyst reads it: rounded money and GB, plain column names and words, one
sentence per saving and cost, dated prices with a staleness warning, a chart that reads at any scale,
Parquet beside the CSVs, and a month report that says which days it covers."""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.config import ConfigError
from core.usage.costs import Coverage, UsageFigures, compute_cost_report
from core.usage.formatting import money, number_text, round_money, unit_price
from core.usage.pricing import PricingConfig, load_price_table, parse_price_table, stale_prices
from core.usage.report import (
    analyst_tables,
    chart_figure,
    providers_table,
    render_chart,
    render_html,
    report_title,
    savings_table,
)
from tests.usage.test_costs import figures, simple_prices

GB = 1_000_000_000


def demo_figures(scale: float = 1.0) -> UsageFigures:
    """About the demo's volume: 0.23 GB of files, a hairline of base64 left in the rows."""
    return UsageFigures(
        database_bytes=1_500_000 * scale,
        database_relation_bytes=150_000_000 * scale,
        original_bytes=228_080_141 * scale,
        referenced_bytes=240_000_000 * scale,
        live_original_bytes=228_080_141 * scale,
        variant_bytes=30_000_000 * scale,
        variant_delivery_saved_bytes=60_000_000 * scale,
        backup_bytes=0,
        retention_deleted_bytes=0,
        owner_count=40 * scale,
    )


def test_money_is_rounded_to_cents_or_two_significant_figures_below_a_cent() -> None:
    assert money(1234.5678) == "$1,234.57"
    assert money(0.0203) == "$0.02"
    assert money(0.000312) == "$0.00031"  # never "$0.00" for a tiny non-zero cost
    assert money(-0.00082) == "-$0.00082"
    assert money(0) == "$0.00"
    assert round_money(0.22808014100000001) == 0.23
    assert round_money(0.0000251) == 0.000025


def test_analyst_tables_use_plain_names_words_and_rounded_figures() -> None:
    prices = load_price_table()
    report = compute_cost_report(demo_figures(), prices, "day", dt.date(2026, 12, 1))
    for name, frame in analyst_tables(report, prices).items():
        for column in frame.columns:
            assert "_" not in column, f"{name}: snake_case header {column!r}"
        text = frame.to_csv(index=False)
        assert "True" not in text and "False" not in text, name
        # no float noise: every number in the CSV has at most 6 decimals (GB to 3, money to cents or
        # two significant figures below a cent)
        assert not re.search(r"\d\.\d{7,}", text), f"{name}: unrounded float in {text[:300]}"
    providers = providers_table(report)
    assert set(providers["Configured for this platform"]) == {"yes", "no"}
    assert providers["Stored GB"].map(lambda v: v == round(v, 3)).all()
    assert providers["How the cost comes about"].str.endswith(".").all()


def test_every_saving_is_explained_in_a_sentence_even_a_negative_one_with_free_egress() -> None:
    prices = load_price_table()  # Cloudflare R2: egress is free
    report = compute_cost_report(demo_figures(), prices, "day", dt.date(2026, 12, 1))
    savings = savings_table(report).set_index("Cause")
    variants = savings.loc["WebP/AVIF variants"]
    assert variants["Monthly saving (USD, negative: a cost)"] < 0
    sentence = variants["Explanation"]
    assert "$0.0/GB" not in sentence
    assert "does not charge for egress" in sentence and "variants cost" in sentence
    assert sentence.count(".") >= 1 and sentence.endswith(".")
    for cause, explanation in savings["Explanation"].items():
        assert explanation[0].isupper() or explanation[0].isdigit(), cause
    # with paid egress the same cause names the egress price and nets it against the storage cost
    paid = compute_cost_report(figures(), parse_price_table(simple_prices()), "day", dt.date(2026, 3, 10))
    text = savings_table(paid).set_index("Cause").loc["WebP/AVIF variants", "Explanation"]
    assert "$0.10/GB egress" in text and "variants save" in text


def test_the_headline_never_shows_zero_for_a_tiny_cost_and_the_title_names_the_period() -> None:
    prices = load_price_table()
    report = compute_cost_report(demo_figures(0.01), prices, "day", dt.date(2026, 12, 1))
    page = render_html(report, prices, render_chart(report, prices))
    headline = re.search(r'<p id="headline">(.*?)</p>', page, re.S).group(1)
    assert "$0.00 " not in headline and "$0.00<" not in headline
    assert re.search(r"\$0\.0000\d+|\$0\.000\d+", headline)
    assert report_title(report) == "Storage cost report, Tuesday 1 December 2026"
    assert "day from" not in page
    month = compute_cost_report(demo_figures(), prices, "month", dt.date(2026, 11, 1))
    assert report_title(month) == "Storage cost report, November 2026"


def test_the_report_warns_about_prices_older_than_six_months_at_its_own_date() -> None:
    raw = simple_prices()
    raw["postgres"]["pg"]["as_of"] = "2026-02-01"
    prices = parse_price_table(raw)
    assert prices.stale_after_days == 183
    fresh = stale_prices(prices, dt.date(2025, 3, 1))
    assert fresh == []
    old = stale_prices(prices, dt.date(2026, 7, 1))  # 2024-11-01 prices are stale, 2026-02-01 is not
    assert len(old) == 2 and all("2024-11-01" in w for w in old)
    report = compute_cost_report(figures(), prices, "day", dt.date(2026, 7, 1))
    page = render_html(report, prices, render_chart(report, prices))
    assert "Prices to re-check" in page and "days before this report" in page
    early = compute_cost_report(figures(), prices, "day", dt.date(2025, 3, 1))
    assert "Prices to re-check" not in render_html(early, prices, render_chart(early, prices))


def test_the_price_table_is_a_typed_model_and_errors_name_the_file_and_the_field() -> None:
    raw = simple_prices()
    raw["object_storage"]["objects"]["per_gb_montth"] = 0.02  # a typo is refused, not ignored
    with pytest.raises(ConfigError, match=r"pricing\.yaml.*object_storage\.objects\.per_gb_montth"):
        parse_price_table(raw)
    raw = simple_prices()
    raw["object_storage"]["objects"]["per_gb_month"] = -1
    with pytest.raises(ConfigError, match=r"object_storage\.objects\.per_gb_month"):
        parse_price_table(raw)
    model = PricingConfig.model_validate(simple_prices())
    assert model.model_config["frozen"] and model.model_config["extra"] == "forbid"
    assert model.stale_after_days == 183  # one default, in the model


def test_chart_reads_at_demo_scale_and_at_terabytes_on_positive_log_axes() -> None:
    prices = load_price_table()
    for scale in (1, 20_000):  # 0.23 GB and ~5 TB of files
        report = compute_cost_report(demo_figures(scale), prices, "day", dt.date(2026, 12, 1))
        fig = chart_figure(report, prices)
        left, right = fig.axes
        assert left.get_xscale() == "log" and left.get_xlim()[0] > 0  # no band below zero
        labels = [t.get_text().replace("\\$", "$") for t in left.texts]
        h = report.headline
        assert money(h["now_monthly_usd"]) in labels and money(h["base64_in_postgres_monthly_usd"]) in labels
        # every plotted value sits inside the axis
        low, high = left.get_xlim()
        for patch in left.patches:
            assert low <= patch.get_x() + patch.get_width() <= high
        ticks = [t.get_text().replace("\\$", "$") for t in left.get_xticklabels()]
        assert all(t.startswith("$") or t == "" for t in ticks)
        # fixed fees are written beside the per-GB bars, not added to them
        notes = " ".join(t.get_text().replace("\\$", "$") for t in right.texts)
        assert "$5.00/month fixed" in notes and "GB included" in notes


def test_parquet_tables_match_the_csv_ones() -> None:
    from core.usage.report import _parquet

    prices = load_price_table()
    report = compute_cost_report(demo_figures(), prices, "day", dt.date(2026, 12, 1))
    for frame in analyst_tables(report, prices).values():
        table = pq.read_table(io.BytesIO(_parquet(frame))).to_pandas()
        pd.testing.assert_frame_equal(table, frame)


def test_the_month_report_says_how_many_days_it_covers_and_how_storage_grew() -> None:
    summaries = pd.DataFrame(
        {
            "snapshot_date": [dt.date(2026, 3, d) for d in (1, 2, 5)],
            "original_bytes": [1 * GB, 2 * GB, 4 * GB],
            "variant_bytes": [0, 0, 0],
            "backup_bytes": [0, 0, 0],
            "database_bytes": [0, 0, 0],
        }
    )
    coverage = Coverage.of(summaries, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert (coverage.snapshot_days, coverage.period_days) == (3, 31)
    assert coverage.growth_bytes == 3 * GB
    sentence = coverage.sentence("month")
    assert "3 daily snapshots (2026-03-01 to 2026-03-05) of the month's 31 days" in sentence
    assert "grew by 3.000 GB" in sentence
    one = Coverage.of(summaries.iloc[:1], dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert "1 daily snapshot " in one.sentence("month") and "growth is unknown" in one.sentence("month")


def test_unit_prices_keep_their_listed_digits_and_table_cells_show_no_float_noise() -> None:
    assert unit_price(0.0125) == "$0.0125" and unit_price(0.115) == "$0.115" and unit_price(0.15) == "$0.15"
    prices = load_price_table()
    report = compute_cost_report(demo_figures(), prices, "day", dt.date(2026, 12, 1))
    page = render_html(report, prices, render_chart(report, prices))
    cells = re.findall(r'<td class="n">([^<]*)</td>', page)
    assert cells and not [c for c in cells if c in ("-0", "0.0") or "e-" in c]
    saving = savings_table(report).set_index("Cause").loc["WebP/AVIF variants"].iloc[1]
    assert f'<td class="n">{number_text(saving)}</td>' in page and number_text(saving).startswith("-0.000")
    assert '<td class="n">0.0125</td>' in page  # S3 Standard-IA, as listed
