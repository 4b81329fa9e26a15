"""Look at the cost report as an analyst would: build a synthetic catalog (benchmarks/usage.py's
generator) at the demo's volume and at multiples of it, take the snapshots of a few days, publish the
daily and monthly reports to a local store, open them from their signed URLs in headless Chromium
(Debian's package) and save full-page screenshots.

    PYTHONPATH=. python benchmarks/usage_report.py [--factors 1 1000] [--out /tmp/cost-report-screens]

Prints, per factor, the headline, what the browser saw (headline size and contrast, chart loaded) and
where the screenshots are. Needs `apt-get install chromium` and playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.usage import build_catalog
from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import CATALOG_SCHEMA as C
from core.media_server import MediaServer
from core.objectstore.local import LocalObjectStore
from core.sources import load_sources_config
from core.usage.costs import Coverage, UsageFigures, compute_cost_report, headline_text
from core.usage.pricing import load_price_table
from core.usage.quotas import load_quota_config
from core.usage.report import publish_report, write_cost_tables
from core.usage.snapshot import load_summaries, take_usage_snapshot
from tests.support.browser import inspect_report

#: The demo (`./dev demo`, scale 1) holds ~110 originals of ~1 MB for 12 users.
DEMO_OBJECTS = 110
DEMO_OWNERS = 12
MONTH = dt.date(2026, 11, 1)
DAYS = (dt.date(2026, 11, 3), dt.date(2026, 11, 10), dt.date(2026, 11, 17), dt.date(2026, 11, 24))


def report_for(engine: sa.Engine, store: LocalObjectStore, period: str, first: dt.date, last: dt.date):
    prices = load_price_table()
    with engine.begin() as conn:
        summaries = load_summaries(conn, first, last)
        coverage = Coverage.of(summaries, first, last)
        report = compute_cost_report(UsageFigures.from_summaries(summaries), prices, period, first, coverage)
        write_cost_tables(conn, report)
    return report, prices, publish_report(store, report, prices)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--out", type=Path, default=Path("/tmp/cost-report-screens"))
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    url = args.database_url
    if not url:
        from core.embedded_postgres import start_embedded_postgres

        url = start_embedded_postgres(
            Path("/tmp") / f"mp-report-screens-{os.getpid()}", delete_on_exit=True
        ).ensure_database("report_screens")
    upgrade_catalog(url)
    engine = get_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "objects"
        server = MediaServer(root, "screens", "127.0.0.1", 0, "/media")
        store = LocalObjectStore(
            root, signing_secret="screens", base_url=f"http://127.0.0.1:{server.server_address[1]}/media"
        )
        server.serve_in_thread()
        try:
            for factor in args.factors:
                started = time.perf_counter()
                objects, owners = DEMO_OBJECTS * factor, DEMO_OWNERS * factor
                build_catalog(engine, objects, owners)
                with engine.begin() as conn:
                    conn.execute(sa.text(f"DELETE FROM {C}.usage_summaries"))
                    # the month grows: a quarter of the objects arrives on each snapshot day
                    for i, day in enumerate(DAYS):
                        at = dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
                        for table, column in (("stored_objects", "id"), ("object_references", "object_id")):
                            conn.execute(
                                sa.text(f"UPDATE {C}.{table} SET created_at = :at WHERE {column} % 4 = :i"),
                                {"at": at, "i": i},
                            )
                    for day in DAYS:
                        take_usage_snapshot(conn, day, load_sources_config(), load_quota_config())
                print(
                    f"x{factor}: {objects:,} objects, {owners:,} owners, 4 snapshots"
                    f" in {time.perf_counter() - started:.1f}s"
                )
                for period, first, last in (
                    ("day", DAYS[-1], DAYS[-1]),
                    ("month", MONTH, dt.date(2026, 11, 30)),
                ):
                    report, prices, published = report_for(engine, store, period, first, last)
                    shot = args.out / f"report-x{factor}-{period}.png"
                    view = inspect_report(published.signed_url, screenshot=shot)
                    print(f"  {period}: {headline_text(report, prices)}")
                    print(
                        f"    browser: HTTP {view.status}, headline {view.font_px:.0f}px contrast"
                        f" {view.contrast:.1f}:1 at y={view.headline_top:.0f}-{view.headline_bottom:.0f},"
                        f" chart loaded {view.chart_complete} {view.chart_natural_size}, shown"
                        f" {view.chart_shown_width:.0f}px, {view.warnings} price warnings -> {shot}"
                    )
                    (args.out / f"chart-x{factor}-{period}.png").write_bytes(published.chart_png)
        finally:
            server.shutdown()
            server.server_close()
            engine.dispose()


if __name__ == "__main__":
    main()
