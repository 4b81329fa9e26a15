"""Per-object lineage: the run tag every writer records, and the command that reads it back.

    python -m orchestration.lineage originals/ab/cd/<sha256>.jpg      # a storage key (or media://<key>)
    python -m orchestration.lineage <sha256>                          # 64 hex digits
    python -m orchestration.lineage stories:42[:images[0].data]       # a source row (and JSON path)
    python -m orchestration.lineage owner:42 [--json]                 # everything of one owner

Prints where the object came from (source row and JSON path, or upload), the run that stored it, its
variants and their runs, which backups hold it, its live and released references, retention decisions
and quarantine records, each run as a link to the Dagster UI (DAGSTER_UI_URL; see resources/settings.py).
Exit 0 when found, 2 for an argument that is malformed or names nothing in the catalog.
"""

from __future__ import annotations

import argparse
import json
import sys

from dagster import AssetKey, DagsterInvariantViolationError, OpExecutionContext

from core.lineage import RunLineage, UnknownTarget, lineage_of, render_text


def run_lineage(context: OpExecutionContext, asset_key: AssetKey | None = None) -> RunLineage:
    """What a run's catalog rows record: its id, the asset it materializes and the partition.

    `asset_key` is for ops inside a graph-backed asset, whose context has no single asset of its own.
    """
    if asset_key is None:
        try:
            asset_key = context.asset_key
        except DagsterInvariantViolationError:
            asset_key = None
    return RunLineage(
        run_id=context.run_id,
        asset_key=asset_key.to_user_string() if asset_key is not None else None,
        partition_key=context.partition_key if context.has_partition_key else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.lineage",
        description="Where a stored object came from and everything that happened to it since.",
    )
    parser.add_argument("target", help="storage key | sha256 | table:pk[:json path] | owner:<id>")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    from core.catalog.db import get_engine
    from resources.settings import resolved_database_url, ui_base_url

    engine = get_engine(resolved_database_url())
    try:
        with engine.connect() as conn:
            report = lineage_of(conn, args.target, ui_base_url=ui_base_url())
    except UnknownTarget as exc:
        print(f"lineage: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
