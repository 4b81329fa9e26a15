"""The sweep on the demo legacy database (BIGINT keys, the seed's populations): soft-deleted rows past
30 days go, recoverable ones stay, idle users are warned first and deleted only on a later sweep."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.demo.legacy_db import REFERENCE_TIME, generate_legacy_database
from core.retention.config import INACTIVE_USERS, SOFT_DELETED_ROWS
from tests.support.retention import audit, local_store, scalar, sweep


def test_sweep_over_the_demo_database_warns_then_deletes_and_keeps_recoverable_rows(
    database_url: str, tmp_path: Path
) -> None:
    summary = generate_legacy_database(database_url, scale=0.2)
    upgrade_catalog(database_url)
    engine: sa.Engine = get_engine(database_url)
    store = local_store(tmp_path)
    cutoff = REFERENCE_TIME - timedelta(days=30)
    stories_before = scalar(engine, "SELECT count(*) FROM stories")
    old_deleted = scalar(engine, "SELECT count(*) FROM stories WHERE deleted_at < :c", c=cutoff)
    assert old_deleted > 0

    dry = sweep(engine, store, now=REFERENCE_TIME, dry_run=True, run_id="dry")
    assert scalar(engine, "SELECT count(*) FROM stories") == stories_before
    assert dry.policies[SOFT_DELETED_ROWS].counts["rows_deleted"] >= old_deleted

    first = sweep(engine, store, now=REFERENCE_TIME, run_id="first")

    assert scalar(engine, "SELECT count(*) FROM stories WHERE deleted_at < :c", c=cutoff) == 0
    assert scalar(engine, "SELECT count(*) FROM stories WHERE deleted_at >= :c", c=cutoff) > 0  # recoverable
    idle = summary.user_populations["inactive"]
    warned = {int(o) for o in first.policies[INACTIVE_USERS].warned_owners}
    assert set(idle) <= warned and set(summary.user_populations["warning"]) <= warned
    assert scalar(engine, "SELECT count(*) FROM users WHERE id = ANY(:ids)", ids=idle) == len(idle)
    dry_rows = sorted(
        (a.target_type, a.target_id) for a in audit(engine, "dry") if a.action == "would_delete"
    )
    real_rows = sorted((a.target_type, a.target_id) for a in audit(engine, "first") if a.action == "deleted")
    assert dry_rows == real_rows  # one for one: a row is never counted twice

    later = sweep(engine, store, now=REFERENCE_TIME + timedelta(days=31), run_id="later")

    assert scalar(engine, "SELECT count(*) FROM users WHERE id = ANY(:ids)", ids=idle) == 0
    assert scalar(engine, "SELECT count(*) FROM stories WHERE user_id = ANY(:ids)", ids=idle) == 0
    active = summary.user_populations["active"]
    assert scalar(engine, "SELECT count(*) FROM users WHERE id = ANY(:ids)", ids=active) == len(active)
    assert later.policies[INACTIVE_USERS].counts["owners_deleted"] >= len(idle)
