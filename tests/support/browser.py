"""Open a cost report in headless Chromium (Debian's package, driven by playwright) and read what a person
would see: the headline's size, colour and position, whether the chart image loaded, horizontal overflow.

Never `playwright install`: the system's /usr/bin/chromium (apt-get install chromium) is launched through
`executable_path`. Used by tests/usage/test_report_browser.py and benchmarks/usage_report.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

_READ_PAGE = """() => {
  const headline = document.querySelector('#headline');
  const style = getComputedStyle(headline);
  const box = headline.getBoundingClientRect();
  const chart = document.querySelector('#chart');
  const chartBox = chart.getBoundingClientRect();
  return {
    title: document.querySelector('h1').innerText,
    headline: headline.innerText,
    fontPx: parseFloat(style.fontSize),
    color: style.color,
    background: getComputedStyle(document.body).backgroundColor,
    headlineTop: box.top, headlineBottom: box.bottom,
    chartComplete: chart.complete, chartNaturalWidth: chart.naturalWidth,
    chartNaturalHeight: chart.naturalHeight, chartShownWidth: chartBox.width,
    overflowX: document.documentElement.scrollWidth - window.innerWidth,
    warnings: Array.from(document.querySelectorAll('.warn li')).length,
    tables: document.querySelectorAll('table').length,
  };
}"""


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class ReportView:
    status: int
    title: str
    headline: str
    font_px: float
    contrast: float  # WCAG contrast ratio of the headline text against the page background
    headline_top: float
    headline_bottom: float
    chart_complete: bool
    chart_natural_size: tuple[int, int]
    chart_shown_width: float
    overflow_x: float
    warnings: int
    tables: int


def _rgb(css: str) -> tuple[float, float, float]:
    parts = css[css.index("(") + 1 : css.index(")")].split(",")
    values = [float(p) for p in parts[:3]]
    if len(parts) == 4 and float(parts[3]) == 0:  # transparent body: the canvas is white
        values = [255.0, 255.0, 255.0]
    return values[0], values[1], values[2]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(_rgb(foreground)), _luminance(_rgb(background))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def inspect_report(
    url: str, screenshot: Path | None = None, width: int = 1366, height: int = 900
) -> ReportView:
    """Load `url` in headless Chromium at a laptop's viewport; optionally save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            response = page.goto(url, wait_until="load")
            seen = page.evaluate(_READ_PAGE)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return ReportView(
        status=response.status if response else 0,
        title=seen["title"],
        headline=seen["headline"],
        font_px=seen["fontPx"],
        contrast=contrast_ratio(seen["color"], seen["background"]),
        headline_top=seen["headlineTop"],
        headline_bottom=seen["headlineBottom"],
        chart_complete=seen["chartComplete"],
        chart_natural_size=(seen["chartNaturalWidth"], seen["chartNaturalHeight"]),
        chart_shown_width=seen["chartShownWidth"],
        overflow_x=seen["overflowX"],
        warnings=seen["warnings"],
        tables=seen["tables"],
    )
