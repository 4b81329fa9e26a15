"""kill -9 at several points, then rerun: every blob stored exactly once, nothing lost, nothing wrong."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.blobcodec import CorruptBase64, decode_blob_text
from core.catalog.db import PROJECT_ROOT
from core.objectstore.local import LocalObjectStore
from tests.support.migration import all_values, assert_fully_migrated, create_legacy_tables, reference_key


def run_worker(url: str, root: Path, *kill: str, stream_above: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MIGRATION_STREAM_ABOVE": str(stream_above)}
    return subprocess.run(
        [sys.executable, "-m", "tests.support.migration_worker", url, str(root), *kill],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def original_checksums(url: str) -> dict[tuple[str, str, str], str]:
    """SHA-256 of every decodable original blob, captured before anything runs."""
    out = {}
    for place, value in all_values(url).items():
        if isinstance(value, str) and value:
            try:
                data = decode_blob_text(value).data
            except CorruptBase64:
                continue
            out[place] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.parametrize("stream_above", [8 * 1024 * 1024, 0], ids=["rows-whole", "rows-in-slices"])
def test_killed_runs_resume_and_every_blob_matches_its_original(
    database_url: str, tmp_path: Path, stream_above: int
) -> None:
    fixture = create_legacy_tables(database_url, stories=5)
    originals = original_checksums(database_url)
    before = all_values(database_url)
    root = tmp_path / "objects"
    kill_points = [
        ("object_stored", "3"),  # objects in storage, nothing committed yet
        ("row_updated", "2"),  # inside a row's transaction, after its UPDATE, before COMMIT
        ("row_committed", "3"),  # right after a commit, before progress is saved
        ("batch_done", "2"),  # right after progress was saved
        ("object_stored", "5"),
    ]
    for event, count in kill_points:
        result = run_worker(database_url, root, event, count, stream_above=stream_above)
        assert result.returncode == -signal.SIGKILL, (event, result.stderr[-2000:])
    final = run_worker(database_url, root, stream_above=stream_above)
    assert final.returncode == 0, final.stderr[-2000:]

    store = LocalObjectStore(root, signing_secret="s")
    after = all_values(database_url)
    bad = {(t, pk, path) for t, pk, path, _ in fixture.bad}
    for place, value in before.items():
        if place in bad:
            assert after[place] == value  # refused values are left exactly as they were
            continue
        key = reference_key(after[place])
        assert hashlib.sha256(store.get_bytes(key)).hexdigest() == originals[place], place
    assert_fully_migrated(database_url, store, fixture)  # exactly one object per distinct content
