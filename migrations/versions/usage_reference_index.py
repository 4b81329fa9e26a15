"""usage: indexes for the snapshot, (object, owner) on object_references and size on stored_objects

Revision ID: 0003_usage_refs
Revises: 0002_retention
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003_usage_refs"
down_revision = "0002_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_object_references_object_owner",
        "object_references",
        ["object_id", "owner_id"],
        unique=False,
        schema="media_catalog",
        postgresql_include=["created_at", "released_at"],
    )
    op.create_index(
        "ix_stored_objects_size", "stored_objects", ["size_bytes"], unique=False, schema="media_catalog"
    )


def downgrade() -> None:
    op.drop_index("ix_stored_objects_size", table_name="stored_objects", schema="media_catalog")
    op.drop_index("ix_object_references_object_owner", table_name="object_references", schema="media_catalog")
