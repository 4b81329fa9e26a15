"""lineage: every catalog row records the run (asset, partition) that produced it; object_lineage view

Stored objects, references, variants and backup object copies get `run_id`, `asset_key` and
`partition_key`; quarantine records and retention audit rows already had `run_id` and get the other two.
Nothing is rewritten: existing rows keep NULL, which reads "written before lineage was recorded".

`object_lineage` is one row per thing that happened to a stored object (stored, referenced, a variant,
a backup copy, a backup manifest listing it, a retention decision, a quarantine record of the same
content), each with the run, asset and partition that did it, so "where did this come from, which run
wrote it, which backups hold it, why was it deleted" is one query:
`SELECT * FROM media_catalog.object_lineage WHERE storage_key = '...' ORDER BY at`.

Revision ID: 0008_lineage
Revises: 0004_identity
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_lineage"
down_revision = "0004_identity"
branch_labels = None
depends_on = None

S = "media_catalog"
NEW_RUN_COLUMNS = ("stored_objects", "object_references", "variants", "backup_object_copies")
HAD_RUN_ID = ("quarantine", "retention_audit")

# Retention audit rows name their target in several ways (see core/retention and core/backups/retention):
# an object or variant by id, a reference by "source:pk[:json path]", a backup copy by "copy:<sha256>",
# and an upload by its storage key. Each way is its own branch with an equality join, so Postgres can hash
# or index-join them (an OR of them would compare every audit row with every object).
# A day's object backup lists the objects created that day and those never copied before (their copy's
# first_backup_id), so only those backups' manifests are searched for the object, not every manifest.
_AUDIT = """SELECT o.id, o.sha256, o.storage_key, 'retention', a.action, a.storage_key, a.owner_id,
       {place}, concat_ws(': ', a.policy, a.target_type || ' ' || a.target_id, a.reason),
       a.run_id, a.asset_key, a.partition_key, a.created_at"""
_NO_PLACE = "NULL, NULL, NULL, NULL, NULL, NULL"
_REF_PLACE = "r.source_name, r.source_schema, r.source_table, r.source_column, r.source_pk, r.json_path"
OBJECT_LINEAGE = f"""
SELECT o.id AS object_id, o.sha256, o.storage_key, 'stored' AS event, o.status AS state,
       o.storage_key AS item_key, NULL::text AS owner_id, NULL::text AS source_name,
       NULL::text AS source_schema, NULL::text AS source_table, NULL::text AS source_column,
       NULL::text AS source_pk, NULL::text AS json_path,
       concat_ws(' ', o.mime_type, o.size_bytes || ' bytes', o.provider) AS detail,
       o.run_id, o.asset_key, o.partition_key, o.created_at AS at
FROM {S}.stored_objects o
UNION ALL
SELECT o.id, o.sha256, o.storage_key, 'reference',
       CASE WHEN r.released_at IS NULL THEN 'live' ELSE 'released' END,
       NULL, r.owner_id, {_REF_PLACE},
       concat_ws(' ', r.origin, CASE WHEN r.released_at IS NOT NULL THEN 'released ' || r.released_at END,
                 CASE WHEN r.source_deleted_at IS NOT NULL THEN 'source row deleted '
                      || r.source_deleted_at END),
       r.run_id, r.asset_key, r.partition_key, r.created_at
FROM {S}.object_references r JOIN {S}.stored_objects o ON o.id = r.object_id
UNION ALL
SELECT o.id, o.sha256, o.storage_key, 'variant', v.status, v.storage_key, NULL, {_NO_PLACE},
       concat_ws(' ', v.variant_name, v.width || 'x' || v.height, v.size_bytes || ' bytes', v.error),
       v.run_id, v.asset_key, v.partition_key, v.created_at
FROM {S}.variants v JOIN {S}.stored_objects o ON o.id = v.parent_object_id
UNION ALL
SELECT o.id, o.sha256, o.storage_key, 'backup_copy', 'copied', c.backup_key, NULL, {_NO_PLACE},
       'first copied by backup ' || c.first_backup_id,
       c.run_id, c.asset_key, c.partition_key, c.copied_at
FROM {S}.backup_object_copies c JOIN {S}.stored_objects o ON o.sha256 = c.sha256
UNION ALL
SELECT o.id, o.sha256, o.storage_key, 'backup_manifest', b.status, b.manifest_key, NULL, {_NO_PLACE},
       'objects backup ' || b.id || ' of ' || b.backup_date,
       b.run_id, NULL, b.backup_date::text, b.started_at
FROM {S}.stored_objects o
JOIN {S}.backups b ON b.kind = 'objects'
  AND (b.backup_date = (o.created_at AT TIME ZONE 'UTC')::date
       OR b.id IN (SELECT c.first_backup_id FROM {S}.backup_object_copies c WHERE c.sha256 = o.sha256))
WHERE b.manifest -> 'objects' @> jsonb_build_array(jsonb_build_object('sha256', o.sha256::text))
UNION ALL
{_AUDIT.format(place=_NO_PLACE)}
FROM {S}.retention_audit a JOIN {S}.stored_objects o ON a.target_id = o.id::text
WHERE a.target_type = 'object'
UNION ALL
{_AUDIT.format(place=_NO_PLACE)}
FROM {S}.retention_audit a JOIN {S}.stored_objects o ON a.target_id = 'copy:' || o.sha256::text
WHERE a.target_type = 'backup'
UNION ALL
{_AUDIT.format(place=_NO_PLACE)}
FROM {S}.retention_audit a JOIN {S}.uploads u ON u.upload_key = a.storage_key
JOIN {S}.stored_objects o ON o.id = u.object_id
WHERE a.target_type = 'upload'
UNION ALL
{_AUDIT.format(place=_NO_PLACE)}
FROM {S}.retention_audit a JOIN {S}.variants v ON a.target_id = v.id::text
JOIN {S}.stored_objects o ON o.id = v.parent_object_id
WHERE a.target_type = 'variant'
UNION ALL
{_AUDIT.format(place=_REF_PLACE)}
FROM {S}.retention_audit a JOIN {S}.object_references r
  ON a.target_id = r.source_name || ':' || r.source_pk || CASE WHEN r.json_path = '' THEN ''
                                                          ELSE ':' || r.json_path END
JOIN {S}.stored_objects o ON o.id = r.object_id
WHERE a.target_type = 'reference'
UNION ALL
{_AUDIT.format(place=_REF_PLACE)}
FROM {S}.retention_audit a JOIN {S}.object_references r ON a.target_id = r.source_name || ':' || r.source_pk
JOIN {S}.stored_objects o ON o.id = r.object_id
WHERE a.target_type = 'reference' AND r.json_path <> ''
UNION ALL
SELECT o.id, coalesce(o.sha256, q.sha256), o.storage_key, 'quarantine', q.reason_code, NULL, NULL,
       q.source_name, q.source_schema, q.source_table, q.source_column, q.source_pk, q.json_path, q.reason,
       q.run_id, q.asset_key, q.partition_key, q.created_at
FROM {S}.quarantine q LEFT JOIN {S}.stored_objects o ON o.sha256 = q.sha256
"""


def upgrade() -> None:
    for table in NEW_RUN_COLUMNS:
        op.add_column(table, sa.Column("run_id", sa.Text(), nullable=True), schema=S)
    for table in NEW_RUN_COLUMNS + HAD_RUN_ID:
        op.add_column(table, sa.Column("asset_key", sa.Text(), nullable=True), schema=S)
        op.add_column(table, sa.Column("partition_key", sa.Text(), nullable=True), schema=S)
    op.execute(f"CREATE VIEW {S}.object_lineage AS {OBJECT_LINEAGE}")


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {S}.object_lineage")
    for table in NEW_RUN_COLUMNS + HAD_RUN_ID:
        op.drop_column(table, "partition_key", schema=S)
        op.drop_column(table, "asset_key", schema=S)
    for table in NEW_RUN_COLUMNS:
        op.drop_column(table, "run_id", schema=S)
