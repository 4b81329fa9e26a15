"""identity: a reference / quarantine record is its source, schema, table, column, row and JSON path

Revision ID: 0004_identity
Revises: 0006_analyst_views
Create Date: 2026-12-01

Before, a place was identified by (source_table, source_pk, json_path) alone: two sources on one table
(two columns) or same-named tables in two schemas overwrote each other's references, and the objects left
without one were deleted by the orphaned-objects policy. Every existing row is kept: the new columns are
filled from the configured sources (config/sources.yaml or $MEDIA_CONFIG_DIR) for rows whose source name
and table match a configured source; rows of a source no longer configured, uploads and GDPR exports keep
"" (not a known column of the app's tables). The old unique key is strictly narrower than the new one, so
no existing row can collide.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004_identity"
down_revision = "0006_analyst_views"
branch_labels = None
depends_on = None

C = "media_catalog"
TABLES = {"object_references": "uq_object_references_origin", "quarantine": "uq_quarantine_origin"}
OLD_KEY = ["source_table", "source_pk", "json_path"]
NEW_KEY = ["source_name", "source_schema", "source_table", "source_column", "source_pk", "json_path"]
#: Places that are not a column of the app's tables (written by core.uploads and core.retention.gdpr).
NOT_APP_COLUMNS = ("uploads", "gdpr_export")

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("source_schema", sa.Text(), server_default="", nullable=False), schema=C
        )
        op.add_column(
            table, sa.Column("source_column", sa.Text(), server_default="", nullable=False), schema=C
        )
    conn = op.get_bind()
    pending = sum(
        int(
            conn.execute(
                sa.text(f"SELECT count(*) FROM {C}.{table} WHERE source_name <> ALL(:skip)"),
                {"skip": list(NOT_APP_COLUMNS)},
            ).scalar_one()
        )
        for table in TABLES
    )
    if pending:
        # Only a catalog with migrated rows needs the sources; a fresh install never reads them here.
        from core.sources import load_sources_config

        for source in load_sources_config().sources:
            for table in TABLES:
                conn.execute(
                    sa.text(
                        f"UPDATE {C}.{table} SET source_schema = :schema, source_column = :column "
                        "WHERE source_name = :name AND source_table = :table"
                    ),
                    {
                        "schema": source.schema,
                        "column": source.column,
                        "name": source.name,
                        "table": source.table,
                    },
                )
        for table in TABLES:
            unknown = conn.execute(
                sa.text(
                    f"SELECT source_name, count(*) FROM {C}.{table} "
                    "WHERE source_column = '' AND source_name <> ALL(:skip) GROUP BY 1 ORDER BY 1"
                ),
                {"skip": list(NOT_APP_COLUMNS)},
            ).all()
            for name, count in unknown:
                log.warning(
                    "%s: %d rows of source %r (not configured now, or on another table) keep schema and "
                    "column unknown ('')",
                    table,
                    count,
                    name,
                )
    for table, constraint in TABLES.items():
        op.drop_constraint(constraint, table, schema=C, type_="unique")
        op.create_unique_constraint(constraint, table, NEW_KEY, schema=C)


def downgrade() -> None:
    # Refuses (unique violation) when places now told apart would collapse: nothing is merged silently.
    for table, constraint in TABLES.items():
        op.drop_constraint(constraint, table, schema=C, type_="unique")
        op.create_unique_constraint(constraint, table, OLD_KEY, schema=C)
        op.drop_column(table, "source_column", schema=C)
        op.drop_column(table, "source_schema", schema=C)
