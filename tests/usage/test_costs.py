"""Price table validation, cost arithmetic, quota configuration and the rendered HTML report."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
import re
from typing import Any

import pytest
from PIL import Image

from core.config import load_config
from core.usage.costs import PROJECTION_USERS, UsageFigures, compute_cost_report
from core.usage.pricing import PricingConfigError, load_price_table, parse_price_table
from core.usage.quotas import QuotaConfigError, load_quota_config, parse_quota_config, parse_size
from core.usage.report import projection_table, render_chart, render_html

GB = 1_000_000_000


def simple_prices(**overrides: Any) -> dict[str, Any]:
    """A two-provider table with round numbers so the expected costs can be worked out by hand."""
    raw: dict[str, Any] = {
        "currency": "USD",
        "configured": {"object_storage": "objects", "postgres": "pg"},
        "budget_monthly_usd": 10,
        "reads_per_object_per_month": 2,
        "base64_overhead": 1.5,
        "object_storage": {
            "objects": {"per_gb_month": 0.01, "egress_per_gb": 0.1, "source": "x", "as_of": "2024-11-01"},
            "bundle": {
                "per_gb_month": 0.02,
                "base_monthly": 5,
                "included_gb": 100,
                "source": "x",
                "as_of": "2024-11-01",
            },
        },
        "postgres": {"pg": {"per_gb_month": 0.2, "source": "x", "as_of": "2024-11-01"}},
    }
    raw.update(overrides)
    return raw


def figures(**overrides: float) -> UsageFigures:
    values = {
        "database_bytes": 1 * GB,
        "database_relation_bytes": 1.2 * GB,
        "original_bytes": 8 * GB,
        "referenced_bytes": 10 * GB,
        "live_original_bytes": 7 * GB,
        "variant_bytes": 1 * GB,
        "variant_delivery_saved_bytes": 3 * GB,
        "backup_bytes": 1 * GB,
        "retention_deleted_bytes": 4 * GB,
        "owner_count": 5,
    }
    values.update(overrides)
    return UsageFigures(**values)


def test_every_configured_price_has_a_source_date_and_every_required_provider_is_priced() -> None:
    prices = load_price_table()
    raw = load_config("pricing")
    for category in ("object_storage", "postgres"):
        for key, entry in raw[category].items():
            assert isinstance(entry["as_of"], dt.date), key
            assert prices.prices[key].as_of == entry["as_of"]
            assert prices.prices[key].source.startswith("https://")
    assert set(raw["object_storage"]) == {
        "s3_standard",
        "s3_standard_ia",
        "s3_glacier_instant",
        "cloudflare_r2",
        "backblaze_b2",
        "digitalocean_spaces",
        "hetzner_object_storage",
    }
    assert set(raw["postgres"]) == {"rds_gp3", "railway", "supabase"}


def test_a_price_without_a_date_is_refused() -> None:
    raw = simple_prices()
    del raw["object_storage"]["objects"]["as_of"]
    with pytest.raises(PricingConfigError, match="as_of"):
        parse_price_table(raw)
    raw = simple_prices()
    raw["postgres"]["pg"]["as_of"] = "last spring"
    with pytest.raises(PricingConfigError, match="as_of"):
        parse_price_table(raw)


def test_configured_provider_must_exist_in_its_category() -> None:
    with pytest.raises(PricingConfigError, match=r"configured\.object_storage"):
        parse_price_table(simple_prices(configured={"object_storage": "pg", "postgres": "pg"}))


def test_eur_prices_are_converted_with_the_dated_rate() -> None:
    raw = simple_prices(fx={"EUR_USD": 1.1, "as_of": "2024-10-01"})
    raw["object_storage"]["bundle"]["currency"] = "EUR"
    price = parse_price_table(raw).prices["bundle"]
    assert price.base_monthly == pytest.approx(5.5)
    assert price.per_gb_month == pytest.approx(0.022)
    without_rate = simple_prices()
    without_rate["object_storage"]["bundle"]["currency"] = "EUR"
    with pytest.raises(PricingConfigError, match="EUR_USD"):
        parse_price_table(without_rate)


def test_monthly_cost_counts_base_fee_and_included_gigabytes() -> None:
    bundle = parse_price_table(simple_prices()).prices["bundle"]
    assert bundle.monthly_cost(50) == pytest.approx(5.0)
    assert bundle.monthly_cost(300) == pytest.approx(5 + 200 * 0.02)


def test_cost_report_before_vs_now_providers_and_savings_by_cause() -> None:
    prices = parse_price_table(simple_prices())
    report = compute_cost_report(figures(), prices, "day", dt.date(2026, 3, 10))
    h = report.headline
    # before: 10 GB referenced x 1.5 base64 + 1 GB still in rows = 16 GB at $0.20
    assert h["base64_in_postgres_monthly_usd"] == pytest.approx(16 * 0.2)
    # now: 10 GB of objects at $0.01 + 1 GB in the database at $0.20
    assert h["now_monthly_usd"] == pytest.approx(10 * 0.01 + 0.2)
    assert h["saving_pct"] == pytest.approx((1 - 0.3 / 3.2) * 100)

    rows = report.providers.set_index(["provider", "scenario"])
    assert rows.loc[("bundle", "now"), "monthly_cost_usd"] == pytest.approx(5 + 0.2)
    assert rows.loc[("objects", "now"), "is_configured_provider"]
    assert not rows.loc[("bundle", "now"), "is_configured_provider"]
    assert rows.loc[("pg", "base64_in_postgres"), "gb"] == pytest.approx(16)

    savings = report.savings.set_index("cause")["monthly_usd"]
    assert savings["migration"] == pytest.approx(10 * 1.5 * 0.2 - 10 * 0.01)
    assert savings["deduplication"] == pytest.approx(3 * 0.01)
    assert savings["webp_avif_variants"] == pytest.approx(3 * 2 * 0.1 - 1 * 0.01)
    assert savings["retention"] == pytest.approx(4 * 0.01)


def test_projection_scales_measured_per_user_usage() -> None:
    prices = parse_price_table(simple_prices())
    report = compute_cost_report(figures(), prices, "month", dt.date(2026, 3, 1))
    table = projection_table(report).set_index("Users")
    assert list(table.index) == list(PROJECTION_USERS)
    # per user (5 owners): 16/5 GB before; 10/5 GB objects and 1/5 GB database now
    assert table.loc[1000, "Before: base64 in Postgres (GB)"] == pytest.approx(3200)
    assert table.loc[1000, "Before: monthly cost (USD)"] == pytest.approx(3200 * 0.2)
    assert table.loc[1000, "Now: monthly cost (USD)"] == pytest.approx(2000 * 0.01 + 200 * 0.2)
    assert table.loc[10, "Saving (%)"] == pytest.approx(
        round((1 - (20 * 0.01 + 2 * 0.2) / (32 * 0.2)) * 100, 1)
    )


def test_html_report_embeds_a_chart_that_decodes_as_png() -> None:
    prices = parse_price_table(simple_prices())
    report = compute_cost_report(figures(), prices, "day", dt.date(2026, 3, 10))
    page = render_html(report, prices, render_chart(report))
    match = re.search(r'<img id="chart"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, "the report has no inline chart"
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    image.load()
    assert image.format == "PNG" and image.width >= 600 and image.height >= 300
    assert "$3.20" in page and "$0.30" in page  # the headline: before vs now
    assert "2024-11-01" in page  # price dates are shown


def test_quota_tiers_follow_seed_000_and_sizes_parse() -> None:
    quotas = load_quota_config()
    assert quotas.quota_for("free") == ("free", 100 * 10**6)
    assert quotas.quota_for("paid") == ("paid", 5 * 10**9)
    assert quotas.quota_for("unknown")[0] == quotas.default_tier
    assert quotas.quota_warn_fraction == 0.8 and quotas.growth_gb_per_hour == 10
    assert parse_size("1.5 GiB") == int(1.5 * 2**30)
    assert parse_size(42) == 42
    with pytest.raises(QuotaConfigError):
        parse_size("lots")
    raw = copy.deepcopy(load_config("quotas"))
    raw["default_tier"] = "gold"
    with pytest.raises(QuotaConfigError, match="default_tier"):
        parse_quota_config(raw)
