"""The published cost report, opened from its signed URL in headless Chromium (Debian's package), shows
a legible headline above the fold and a chart that loaded. Skips when chromium or playwright is missing
(.ci/run installs chromium where it can)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from core.media_server import MediaServer
from core.objectstore.local import LocalObjectStore
from core.usage.costs import compute_cost_report
from core.usage.formatting import money
from core.usage.pricing import load_price_table
from core.usage.report import publish_report
from tests.support.browser import chromium_path, inspect_report
from tests.usage.test_report_presentation import demo_figures

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")


@pytest.mark.parametrize("scale", [1, 1000], ids=["demo", "1000x-demo"])
def test_the_report_opens_from_its_signed_url_with_a_legible_headline_and_a_loaded_chart(
    tmp_path: Path, scale: int
) -> None:
    root = tmp_path / "objects"
    server = MediaServer(root, "secret", "127.0.0.1", 0, "/media")
    store = LocalObjectStore(
        root, signing_secret="secret", base_url=f"http://127.0.0.1:{server.server_address[1]}/media"
    )
    thread = server.serve_in_thread()
    try:
        prices = load_price_table()
        report = compute_cost_report(demo_figures(scale), prices, "day", dt.date(2026, 12, 1))
        published = publish_report(store, report, prices)
        view = inspect_report(published.signed_url, screenshot=tmp_path / "report.png")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    assert view.status == 200
    assert view.title == "Storage cost report, Tuesday 1 December 2026"
    assert view.chart_complete and view.chart_natural_size[0] >= 1000 and view.chart_natural_size[1] >= 400
    assert view.chart_shown_width >= 900  # shown at (nearly) full size on a 1366 px wide screen
    assert view.font_px >= 18 and view.contrast >= 4.5  # WCAG AA for large text is 3, body text 4.5
    assert view.headline_top >= 0 and view.headline_bottom <= 400  # read without scrolling
    assert view.overflow_x <= 0
    h = report.headline
    assert money(h["now_monthly_usd"]) in view.headline
    assert money(h["base64_in_postgres_monthly_usd"]) in view.headline
    assert not re.search(r"\$0\.00(?!\d)", view.headline)
    assert view.warnings >= 1  # the 2024 prices are flagged in a December 2026 report
    assert view.tables == 4
    assert (tmp_path / "report.png").stat().st_size > 50_000
