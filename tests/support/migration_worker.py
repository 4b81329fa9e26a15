"""Run the migration of every configured source in a child process, and SIGKILL it at a chosen point.

    python -m tests.support.migration_worker <database_url> <objects_root> [<event> <count>]

MIGRATION_STREAM_ABOVE=<bytes> sets the size above which rows are read in slices (0: every row).
MIGRATION_S3_ENDPOINT and MIGRATION_S3_BUCKET store objects in S3 at that endpoint (a fault proxy in the
tests) instead of the local folder; the process prints its store's request/fault counts as one JSON line.

The process kills itself with SIGKILL (no cleanup, no finally blocks, like `kill -9` or an OOM kill)
the `count`-th time the engine reports `event` (object_stored, row_updated, row_committed, batch_done).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from core.catalog.db import get_engine
from core.migration.engine import MigrationSettings, migrate_source
from core.objectstore.local import LocalObjectStore
from core.sources import load_sources_config


def main(argv: list[str]) -> int:
    url, root = argv[0], Path(argv[1])
    kill_event, kill_at = (argv[2], int(argv[3])) if len(argv) > 3 else (None, 0)
    seen = 0
    lock = threading.Lock()

    def hook(event: str) -> None:
        nonlocal seen
        if event != kill_event:
            return
        with lock:
            seen += 1
            if seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    endpoint = os.environ.get("MIGRATION_S3_ENDPOINT")
    if endpoint:
        from tests.support.faults import flaky_s3_store

        store = flaky_s3_store(endpoint, os.environ["MIGRATION_S3_BUCKET"])
    else:
        store = LocalObjectStore(root, signing_secret="s")
    settings = MigrationSettings(
        batch_rows=2,
        batch_bytes=8192,
        workers=3,
        declared_type_columns=(("files", "mime_type"),),
        stream_above_bytes=int(os.environ.get("MIGRATION_STREAM_ABOVE", 8 * 1024 * 1024)),
    )
    for source in load_sources_config().sources:
        migrate_source(get_engine(url), store, source, settings=settings, on_event=hook)
    stats = getattr(store, "stats", None)
    if stats is not None:
        print(json.dumps({"store": stats.counts()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
