"""SQL views for analysts and BI tools: daily cost, usage by owner, by kind and by storage provider

Plain column names and GB/USD units, over the tables the usage snapshot and the cost reports fill, so a
BI tool pointed at the catalog needs no knowledge of the snapshot's internals. Views only: nothing to
migrate, and a downgrade drops them.

Revision ID: 0006_analyst_views
Revises: 0004_trailing_bytes
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006_analyst_views"
down_revision = "0004_trailing_bytes"
branch_labels = None
depends_on = None

S = "media_catalog"

VIEWS = {
    # one row per day, provider and scenario; the run rate per month and per day of that month
    "daily_cost": f"""
        SELECT r.period_start AS day,
               r.provider,
               CASE r.scenario WHEN 'now' THEN 'object storage now' ELSE 'base64 in Postgres' END
                   AS scenario,
               r.is_configured_provider AS configured,
               round(r.gb::numeric, 3) AS stored_gb,
               round(r.monthly_cost_usd::numeric, 6) AS monthly_cost_usd,
               round((r.monthly_cost_usd / extract(day FROM date_trunc('month', r.period_start)
                   + interval '1 month - 1 day'))::numeric, 6) AS daily_cost_usd,
               round(r.price_per_gb_month::numeric, 6) AS price_per_gb_month_usd,
               r.price_source_date AS price_dated
        FROM {S}.cost_reports r
        WHERE r.period = 'day'""",
    # per day and owner: bytes by location, and the quota of the owner's tier
    "usage_by_owner": f"""
        SELECT u.snapshot_date AS day,
               u.owner_id AS owner,
               q.tier,
               round(coalesce(sum(u.bytes) FILTER (WHERE u.location = 'database'), 0) / 1e9, 6)
                   AS database_gb,
               round(coalesce(sum(u.bytes) FILTER (WHERE u.location = 'originals'), 0) / 1e9, 6)
                   AS originals_gb,
               round(coalesce(sum(u.bytes) FILTER (WHERE u.location = 'variants'), 0) / 1e9, 6)
                   AS variants_gb,
               round(coalesce(sum(u.bytes) FILTER (WHERE u.location = 'backups'), 0) / 1e9, 6)
                   AS backups_gb,
               coalesce(sum(u.object_count) FILTER (WHERE u.location = 'originals'), 0) AS originals,
               round(q.quota_bytes / 1e9, 6) AS quota_gb,
               round((q.used_fraction * 100)::numeric, 1) AS quota_used_pct
        FROM {S}.usage_snapshots u
        LEFT JOIN {S}.owner_quotas q ON q.snapshot_date = u.snapshot_date AND q.owner_id = u.owner_id
        GROUP BY u.snapshot_date, u.owner_id, q.tier, q.quota_bytes, q.used_fraction""",
    # per day, location and kind (image, document, a variant name, a source's base64); content shared by
    # several owners counts once per owner here, as quotas count it
    "usage_by_kind": f"""
        SELECT u.snapshot_date AS day,
               u.location,
               u.kind,
               count(DISTINCT u.owner_id) AS owners,
               sum(u.object_count) AS objects,
               round(sum(u.bytes) / 1e9, 6) AS gb
        FROM {S}.usage_snapshots u
        GROUP BY u.snapshot_date, u.location, u.kind""",
    # where the bytes live now: live originals and ready variants per storage provider, and the base64
    # still in Postgres as of the newest snapshot
    "usage_by_provider": f"""
        SELECT o.provider, 'originals' AS location, o.kind, count(*) AS objects,
               round(sum(o.size_bytes) / 1e9, 6) AS gb, max(o.created_at) AS newest
        FROM {S}.stored_objects o
        WHERE o.status <> 'deleted' AND o.deleted_at IS NULL
        GROUP BY o.provider, o.kind
        UNION ALL
        SELECT o.provider, 'variants', v.variant_name, count(*),
               round(sum(v.size_bytes) / 1e9, 6), max(v.created_at)
        FROM {S}.variants v JOIN {S}.stored_objects o ON o.id = v.parent_object_id
        WHERE v.status = 'ready' AND v.deleted_at IS NULL AND v.size_bytes IS NOT NULL
        GROUP BY o.provider, v.variant_name
        UNION ALL
        SELECT 'postgres', 'database', 'base64 in rows', NULL,
               round(s.database_bytes / 1e9, 6), s.snapshot_date::timestamptz
        FROM (SELECT database_bytes, snapshot_date FROM {S}.usage_summaries
              ORDER BY snapshot_date DESC LIMIT 1) s""",
}


def upgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW {S}.{name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {S}.{name}")
