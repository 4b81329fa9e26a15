"""retention: queue of storage deletes decided but not yet confirmed, and an owner index on the audit

Revision ID: 0002_retention
Revises: 0002_variants
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_retention"
down_revision = "0002_variants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_pending_deletes",
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("target_type", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("storage_key", name=op.f("pk_retention_pending_deletes")),
        schema="media_catalog",
    )
    op.create_index(
        "ix_retention_audit_owner_action",
        "retention_audit",
        ["owner_id", "action"],
        unique=False,
        schema="media_catalog",
    )


def downgrade() -> None:
    op.drop_index("ix_retention_audit_owner_action", table_name="retention_audit", schema="media_catalog")
    op.drop_table("retention_pending_deletes", schema="media_catalog")
