"""usage summaries, owner quotas, cost savings and cost projections

Revision ID: 0002_usage
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_usage"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "media_catalog"


def upgrade() -> None:
    big = sa.BigInteger()
    op.create_table(
        "usage_summaries",
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        *[
            sa.Column(name, big, nullable=False)
            for name in (
                "database_bytes",
                "database_relation_bytes",
                "original_bytes",
                "original_count",
                "referenced_bytes",
                "live_original_bytes",
                "variant_bytes",
                "variant_count",
                "variant_delivery_saved_bytes",
                "backup_bytes",
                "backup_count",
                "orphan_bytes",
                "orphan_count",
                "retention_deleted_bytes",
                "owner_count",
                "peak_hour_bytes",
            )
        ],
        sa.Column("growth_bytes_per_day", sa.Double(), nullable=True),
        sa.Column("largest_files", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_date", name=op.f("pk_usage_summaries")),
        schema=SCHEMA,
    )
    op.create_table(
        "owner_quotas",
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("used_bytes", big, nullable=False),
        sa.Column("quota_bytes", big, nullable=False),
        sa.Column("used_fraction", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_date", "owner_id", name=op.f("pk_owner_quotas")),
        schema=SCHEMA,
    )
    op.create_table(
        "cost_savings",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("gb", sa.Double(), nullable=False),
        sa.Column("monthly_usd", sa.Double(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("period", "period_start", "cause", name=op.f("pk_cost_savings")),
        schema=SCHEMA,
    )
    op.create_table(
        "cost_projections",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("database_gb", sa.Double(), nullable=False),
        sa.Column("object_storage_gb", sa.Double(), nullable=False),
        sa.Column("monthly_cost_usd", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period", "period_start", "users", "scenario", name=op.f("pk_cost_projections")
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("cost_projections", "cost_savings", "owner_quotas", "usage_summaries"):
        op.drop_table(table, schema=SCHEMA)
