"""images: stored_objects.trailing_bytes, bytes after an image's end marker (kept, counted)

Revision ID: 0004_trailing_bytes
Revises: 0003_usage_refs
Create Date: 2026-12-01

Nullable, no default: existing rows (and non-images) stay NULL, "not measured". Adding a nullable
column is a catalog-only change in PostgreSQL (no table rewrite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_trailing_bytes"
down_revision = "0003_usage_refs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "stored_objects", sa.Column("trailing_bytes", sa.BigInteger(), nullable=True), schema="media_catalog"
    )


def downgrade() -> None:
    op.drop_column("stored_objects", "trailing_bytes", schema="media_catalog")
