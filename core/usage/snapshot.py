"""The daily usage snapshot, computed set-based in Postgres and written delete-then-insert per day.

Everything is aggregated by SQL (`INSERT ... SELECT ... GROUP BY`); Python only sees per-day totals and
the small per-owner tables it shapes for metadata. The catalog figures are point-in-time as of the end of
the snapshot day (objects created before it and not yet deleted or released then), so a backfilled
partition reproduces that day; the bytes still held as base64 in the source tables can only be measured
as they are now.

Owner attribution: an owner "uses" every distinct object they hold a live reference to (so deduplicated
content counts once per owner for quotas), while the platform-wide summary counts each object once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from core.catalog.models import CATALOG_SCHEMA
from core.sources import SourcesConfig
from core.usage.quotas import QuotaConfig

if TYPE_CHECKING:  # pandas loads only where a report is computed, not in every step process
    import pandas as pd

C = CATALOG_SCHEMA
#: Owner id for usage that belongs to the platform (database dumps) rather than to an app user.
PLATFORM_OWNER = "_platform"
#: Owner id for source rows whose owner column is NULL.
UNOWNED = "_unowned"
LOCATIONS = ("database", "originals", "variants", "backups")
#: Full-size renditions that can be served instead of the original (the WebP/AVIF delivery saving).
FULL_SIZE_VARIANTS = ("webp", "avif")


@dataclass
class UsageSnapshotResult:
    """The day's totals (one `usage_summaries` row) plus small frames for metadata and reports."""

    snapshot_date: dt.date
    summary: dict[str, Any]
    by_location: pd.DataFrame  # location, kind, bytes, object_count
    top_owners: pd.DataFrame  # owner_id, tier, used_bytes, quota_bytes, used_fraction
    over_quota: pd.DataFrame  # owners above the warn fraction
    relation_sizes: dict[str, int] = field(default_factory=dict)
    previous_date: dt.date | None = None

    @property
    def object_storage_bytes(self) -> int:
        s = self.summary
        return int(s["original_bytes"] + s["variant_bytes"] + s["backup_bytes"])

    @property
    def total_bytes(self) -> int:
        return self.object_storage_bytes + int(self.summary["database_bytes"])


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


# A reference is live at :end when it existed and had not been released; an object/variant exists at
# :end when created before it and not deleted by then.
_OBJECT_EXISTS = """
    o.created_at < :end
    AND ((o.status <> 'deleted' AND o.deleted_at IS NULL) OR o.deleted_at >= :end)
"""
_VARIANT_EXISTS = """
    v.size_bytes IS NOT NULL AND v.created_at < :end
    AND (v.status = 'ready' AND v.deleted_at IS NULL OR v.deleted_at >= :end)
"""
#: Enough memory for the hash aggregates and the materialised CTEs over ~1M rows to stay in memory.
WORK_MEM = "256MB"
#: Planner cost of a page read in index order for the snapshot statement (the default 4 assumes disk).
RANDOM_PAGE_COST = 1.1

# One statement computes the day: the per-owner rows (inserted through a data-modifying CTE) and the
# platform totals it returns. `owner_kind` keeps every existing object, orphans once with a NULL owner,
# so one aggregate yields the per-owner originals and backups and the orphan and referenced figures.
# References are grouped in (object, owner) index order and merged with objects in id order: hash tables
# over a million rows cost more than the reads themselves.
_CATALOG_USAGE = f"""
WITH live_refs AS (
    -- refs: how many references the owner has to the object (one copy each in the legacy rows); grouped
    -- in the order of ix_object_references_object_owner, so it streams from the index without hashing
    SELECT object_id, owner_id, count(*) AS refs FROM {C}.object_references
    WHERE created_at < :end AND (released_at IS NULL OR released_at >= :end)
    GROUP BY object_id, owner_id
),
owner_kind AS MATERIALIZED (
    -- every existing object with each owner that holds it (orphans once, with a NULL owner). Read from the
    -- tables (not from CTEs) so the planner has statistics; OFFSET 0 keeps the backup join on
    -- the objects alone, and their id order lets them merge with the references as those stream from
    -- the index (no million-row hash). Backup copies are content-addressed (one per SHA-256): each
    -- counts for the owners of that content.
    SELECT r.owner_id, o.kind, sum(o.size_bytes) AS bytes, count(*) AS n,
           sum(o.backup_bytes) AS backup_bytes, count(o.backup_bytes) AS backup_n,
           sum(o.size_bytes * r.refs) AS referenced_bytes
    FROM (SELECT o.id, o.kind, o.size_bytes, c.size_bytes AS backup_bytes
          FROM {C}.stored_objects o
          LEFT JOIN {C}.backup_object_copies c ON c.sha256 = o.sha256 AND c.copied_at < :end
          WHERE {_OBJECT_EXISTS} ORDER BY o.id OFFSET 0) o
    LEFT JOIN live_refs r ON r.object_id = o.id
    GROUP BY r.owner_id, o.kind
),
variants AS MATERIALIZED (
    SELECT v.parent_object_id, v.variant_name, v.size_bytes, v.created_at
    FROM {C}.variants v WHERE {_VARIANT_EXISTS}
),
variant_owners AS (
    -- the distinct live (owner, object) pairs of existing objects that have variants: every input is read
    -- in object order from an index, so the whole pipeline merges instead of hashing
    SELECT r.object_id, r.owner_id FROM {C}.object_references r
    WHERE r.created_at < :end AND (r.released_at IS NULL OR r.released_at >= :end)
      AND r.object_id IN (SELECT v.parent_object_id FROM {C}.variants v
                          JOIN {C}.stored_objects o ON o.id = v.parent_object_id
                          WHERE {_VARIANT_EXISTS} AND {_OBJECT_EXISTS})
    GROUP BY r.object_id, r.owner_id
),
inserted AS (
    INSERT INTO {C}.usage_snapshots (snapshot_date, owner_id, kind, location, bytes, object_count)
    SELECT :day, k.owner_id, k.kind, u.location, u.bytes, u.n
    FROM owner_kind k
    CROSS JOIN LATERAL (VALUES ('originals', k.bytes, k.n), ('backups', k.backup_bytes, k.backup_n))
        AS u(location, bytes, n)
    WHERE k.owner_id IS NOT NULL AND u.n > 0
    UNION ALL
    SELECT :day, p.owner_id, v.variant_name, 'variants', sum(v.size_bytes), count(*)
    FROM variant_owners p JOIN {C}.variants v ON v.parent_object_id = p.object_id
    WHERE {_VARIANT_EXISTS}
    GROUP BY p.owner_id, v.variant_name
),
object_totals AS (
    SELECT coalesce(sum(o.size_bytes) FILTER (WHERE {_OBJECT_EXISTS}), 0) AS original_bytes,
           count(*) FILTER (WHERE {_OBJECT_EXISTS}) AS original_count,
           coalesce(sum(o.size_bytes) FILTER (WHERE o.deleted_at < :end), 0) AS deleted_object_bytes
    FROM {C}.stored_objects o
),
orphans AS (
    SELECT coalesce(sum(bytes) FILTER (WHERE owner_id IS NULL), 0) AS orphan_bytes,
           coalesce(sum(n) FILTER (WHERE owner_id IS NULL), 0) AS orphan_count,
           coalesce(sum(referenced_bytes), 0) AS referenced_bytes
    FROM owner_kind
),
full_size AS (
    SELECT parent_object_id, min(size_bytes) AS size_bytes
    FROM {C}.variants v WHERE {_VARIANT_EXISTS} AND v.variant_name = ANY(:full_size)
    GROUP BY parent_object_id
),
ingest AS (
    -- status IN (both statuses) is always true (check constraint) but lets the day's rows be read from
    -- ix_stored_objects_status_created instead of a scan of every object
    SELECT o.created_at, o.size_bytes FROM {C}.stored_objects o
    WHERE {_OBJECT_EXISTS} AND o.created_at >= :start AND o.status IN ('verified', 'deleted')
    UNION ALL SELECT created_at, size_bytes FROM variants WHERE created_at >= :start
),
largest AS (
    -- read from the top of ix_stored_objects_size
    SELECT o.id, o.kind, o.size_bytes FROM {C}.stored_objects o WHERE {_OBJECT_EXISTS}
    ORDER BY o.size_bytes DESC, o.id LIMIT :n
)
SELECT
    (SELECT coalesce(sum(bytes), 0) FROM {C}.usage_snapshots
        WHERE snapshot_date = :day AND location = 'database') AS database_bytes,
    t.original_bytes, t.original_count, t.original_bytes - r.orphan_bytes AS live_original_bytes,
    r.orphan_bytes, r.orphan_count, r.referenced_bytes,
    (SELECT coalesce(sum(size_bytes), 0) FROM variants) AS variant_bytes,
    (SELECT count(*) FROM variants) AS variant_count,
    (SELECT coalesce(sum(greatest(o.size_bytes - f.size_bytes, 0)), 0)
        FROM full_size f JOIN {C}.stored_objects o ON o.id = f.parent_object_id WHERE {_OBJECT_EXISTS})
        AS variant_delivery_saved_bytes,
    b.backup_bytes + p.backup_bytes AS backup_bytes,
    b.backup_count + p.backup_count AS backup_count,
    t.deleted_object_bytes
        + (SELECT coalesce(sum(size_bytes), 0) FROM {C}.variants
           WHERE deleted_at < :end AND size_bytes IS NOT NULL) AS retention_deleted_bytes,
    (SELECT coalesce(max(h), 0) FROM (SELECT sum(size_bytes) AS h FROM ingest
        GROUP BY date_trunc('hour', created_at)) hours) AS peak_hour_bytes,
    (SELECT coalesce(json_agg(json_build_object(
                'id', l.id, 'storage_key', s.storage_key, 'kind', l.kind, 'mime_type', s.mime_type,
                'size_bytes', l.size_bytes,
                'owner_id', (SELECT min(x.owner_id) FROM {C}.object_references x
                             WHERE x.object_id = l.id AND x.created_at < :end
                               AND (x.released_at IS NULL OR x.released_at >= :end)))
            ORDER BY l.size_bytes DESC, l.id), '[]')
        FROM largest l JOIN {C}.stored_objects s ON s.id = l.id) AS largest_files
FROM object_totals t, orphans r,
    (SELECT coalesce(sum(size_bytes), 0) AS backup_bytes, count(*) AS backup_count
     FROM {C}.backup_object_copies WHERE copied_at < :end) b,
    (SELECT coalesce(sum(bytes), 0) AS backup_bytes, coalesce(sum(object_count), 0) AS backup_count
     FROM {C}.usage_snapshots
     WHERE snapshot_date = :day AND owner_id = :platform AND location = 'backups') p
"""


def _insert_database_usage(
    conn: sa.Connection, sources: SourcesConfig, params: dict[str, Any]
) -> dict[str, int]:
    """Bytes each owner still holds in each source column; returns pg_total_relation_size per table."""
    relation_sizes: dict[str, int] = {}
    for source in sources.sources:
        exists = conn.execute(
            sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{source.schema}.{source.table}"}
        ).scalar()
        if not exists:
            continue
        column = f'"{source.column}"' + ("::text" if source.format == "jsonb" else "")
        conn.execute(
            sa.text(f"""
                INSERT INTO {C}.usage_snapshots (snapshot_date, owner_id, kind, location, bytes, object_count)
                SELECT :day, coalesce({source.owner_sql("s")}::text, :unowned), :kind, 'database',
                       sum(octet_length({column})), count(*)
                FROM {source.qualified_table} s
                WHERE "{source.column}" IS NOT NULL
                GROUP BY 2"""),
            {**params, "kind": source.name},
        )
        key = f"{source.schema}.{source.table}"
        if key not in relation_sizes:
            relation_sizes[key] = int(
                conn.execute(sa.text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": key}).scalar()
                or 0
            )
    return relation_sizes


def _insert_platform_backups(conn: sa.Connection, params: dict[str, Any]) -> None:
    """The database dumps kept at the end of the day, as the platform's usage."""
    conn.execute(
        sa.text(f"""
            INSERT INTO {C}.usage_snapshots (snapshot_date, owner_id, kind, location, bytes, object_count)
            SELECT :day, :platform, 'database_dump', 'backups', coalesce(sum(size_bytes), 0), count(*)
            FROM {C}.backups
            WHERE kind = 'database' AND status IN ('complete', 'verified') AND started_at < :end
              AND (expired_at IS NULL OR expired_at >= :end)
            HAVING count(*) > 0"""),
        params,
    )


def _insert_catalog_usage(
    conn: sa.Connection, params: dict[str, Any], relation_sizes: dict[str, int], largest: int
) -> dict[str, Any]:
    """Insert the per-owner catalog rows and return the summary (run after the database rows)."""
    conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    # the catalog is read whole and is in cache: index order is nearly as cheap as a sequential read
    conn.execute(sa.text(f"SET LOCAL random_page_cost = {RANDOM_PAGE_COST}"))
    row = conn.execute(sa.text(_CATALOG_USAGE), {**params, "n": largest}).mappings().one()
    summary: dict[str, Any] = {k: int(v) for k, v in row.items() if k != "largest_files"}
    # the per-owner rows inserted by the statement above are visible to the next one
    summary["owner_count"] = int(
        conn.execute(
            sa.text(f"""SELECT count(DISTINCT owner_id) FROM {C}.usage_snapshots
                        WHERE snapshot_date = :day AND owner_id NOT IN (:platform, :unowned)"""),
            params,
        ).scalar_one()
    )
    summary["database_relation_bytes"] = sum(relation_sizes.values())
    summary["largest_files"] = list(row["largest_files"])
    return summary


def _previous(conn: sa.Connection, day: dt.date) -> tuple[dt.date, int] | None:
    row = conn.execute(
        sa.text(f"""
            SELECT snapshot_date,
                   original_bytes + variant_bytes + backup_bytes + database_bytes AS total
            FROM {C}.usage_summaries WHERE snapshot_date < :day
            ORDER BY snapshot_date DESC LIMIT 1"""),
        {"day": day},
    ).one_or_none()
    return (row[0], int(row[1])) if row else None


def _tier_expression(conn: sa.Connection, sources: SourcesConfig, quotas: QuotaConfig) -> tuple[str, str]:
    """The FROM fragment joining each owner to their tier, and the tier expression (column optional)."""
    owners = sources.owners
    has_column = conn.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = :s AND table_name = :t AND column_name = :c)"
        ),
        {"s": owners.schema, "t": owners.table, "c": quotas.tier_column},
    ).scalar()
    if not has_column:
        return "", ":default_tier"
    join = f'LEFT JOIN "{owners.schema}"."{owners.table}" ow ON ow."{owners.primary_key}"::text = u.owner_id'
    return join, f'ow."{quotas.tier_column}"::text'


def _insert_quotas(
    conn: sa.Connection, sources: SourcesConfig, quotas: QuotaConfig, params: dict[str, Any]
) -> None:
    join, tier = _tier_expression(conn, sources, quotas)
    tier_values = ", ".join(f"(:tier_{i}, :quota_{i})" for i in range(len(quotas.tiers)))
    tier_params: dict[str, Any] = {}
    for i, (name, size) in enumerate(quotas.tiers.items()):
        tier_params[f"tier_{i}"] = name
        tier_params[f"quota_{i}"] = size
    conn.execute(
        sa.text(f"""
        WITH tiers(tier, quota) AS (VALUES {tier_values}),
        used AS (
            SELECT owner_id, sum(bytes) AS used_bytes FROM {C}.usage_snapshots
            WHERE snapshot_date = :day AND location IN ('originals', 'variants', 'database')
              AND owner_id NOT IN (:platform, :unowned)
            GROUP BY owner_id
        ),
        owner_tier AS (
            SELECT u.owner_id, u.used_bytes, coalesce(t.tier, :default_tier) AS tier
            FROM used u {join} LEFT JOIN tiers t ON t.tier = {tier}
        )
        INSERT INTO {C}.owner_quotas (snapshot_date, owner_id, tier, used_bytes, quota_bytes, used_fraction)
        SELECT :day, ot.owner_id, ot.tier, ot.used_bytes, t.quota,
               CASE WHEN t.quota > 0 THEN ot.used_bytes::float8 / t.quota ELSE 0 END
        FROM owner_tier ot JOIN tiers t ON t.tier = ot.tier"""),
        {**params, **tier_params, "default_tier": quotas.default_tier},
    )


def take_usage_snapshot(
    conn: sa.Connection,
    day: dt.date,
    sources: SourcesConfig,
    quotas: QuotaConfig,
    full_size_variants: tuple[str, ...] = FULL_SIZE_VARIANTS,
) -> UsageSnapshotResult:
    """Replace the day's rows in usage_snapshots, owner_quotas and usage_summaries (call in a transaction)."""
    start, end = day_window(day)
    now = dt.datetime.now(dt.UTC)
    params: dict[str, Any] = {
        "day": day,
        "start": start,
        "end": min(end, now) if start <= now else end,
        "platform": PLATFORM_OWNER,
        "unowned": UNOWNED,
        "full_size": list(full_size_variants),
    }
    for table in ("usage_snapshots", "owner_quotas", "usage_summaries"):
        conn.execute(sa.text(f"DELETE FROM {C}.{table} WHERE snapshot_date = :day"), {"day": day})
    relation_sizes = _insert_database_usage(conn, sources, params)
    _insert_platform_backups(conn, params)
    summary = _insert_catalog_usage(conn, params, relation_sizes, quotas.largest_files)
    _insert_quotas(conn, sources, quotas, params)

    previous = _previous(conn, day)
    total = (
        summary["original_bytes"]
        + summary["variant_bytes"]
        + summary["backup_bytes"]
        + summary["database_bytes"]
    )
    growth = (total - previous[1]) / max((day - previous[0]).days, 1) if previous else None
    summary["growth_bytes_per_day"] = growth
    conn.execute(
        sa.text(f"""
            INSERT INTO {C}.usage_summaries ({", ".join(["snapshot_date", *summary])})
            VALUES (:snapshot_date, {", ".join(":" + k for k in summary)})""").bindparams(
            sa.bindparam("largest_files", type_=JSONB)
        ),
        {"snapshot_date": day, **summary},
    )

    import pandas as pd

    by_location = pd.read_sql_query(
        sa.text(f"""
            SELECT location, kind, sum(bytes)::bigint AS bytes, sum(object_count)::bigint AS object_count,
                   count(DISTINCT owner_id) AS owners
            FROM {C}.usage_snapshots WHERE snapshot_date = :day
            GROUP BY location, kind ORDER BY location, bytes DESC"""),
        conn,
        params={"day": day},
    )
    top_owners = pd.read_sql_query(
        sa.text(f"""
            SELECT owner_id, tier, used_bytes, quota_bytes, used_fraction FROM {C}.owner_quotas
            WHERE snapshot_date = :day ORDER BY used_fraction DESC, owner_id LIMIT 20"""),
        conn,
        params={"day": day},
    )
    over_quota = pd.read_sql_query(
        sa.text(f"""
            SELECT owner_id, tier, used_bytes, quota_bytes, used_fraction FROM {C}.owner_quotas
            WHERE snapshot_date = :day AND used_fraction > :fraction
            ORDER BY used_fraction DESC, owner_id LIMIT 100"""),
        conn,
        params={"day": day, "fraction": quotas.quota_warn_fraction},
    )
    return UsageSnapshotResult(
        snapshot_date=day,
        summary=summary,
        by_location=by_location,
        top_owners=top_owners,
        over_quota=over_quota,
        relation_sizes=relation_sizes,
        previous_date=previous[0] if previous else None,
    )


def load_summaries(conn: sa.Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The usage_summaries rows of a date range (inclusive), oldest first."""
    import pandas as pd

    return pd.read_sql_query(
        sa.text(f"""SELECT * FROM {C}.usage_summaries
                    WHERE snapshot_date BETWEEN :first AND :last ORDER BY snapshot_date"""),
        conn,
        params={"first": first, "last": last},
    )


def count_owners_over_quota(conn: sa.Connection, day: dt.date, fraction: float) -> int:
    return int(
        conn.execute(
            sa.text(
                f"SELECT count(*) FROM {C}.owner_quotas WHERE snapshot_date = :day AND used_fraction > :f"
            ),
            {"day": day, "f": fraction},
        ).scalar()
        or 0
    )


def largest_files_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary["largest_files"], default=str)
