"""uploads: object last_modified, sensor batch key and queue time (variants capability)

Revision ID: 0002_variants
Revises: 0002_usage
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_variants"
down_revision = "0002_usage"
branch_labels = None
depends_on = None

SCHEMA = "media_catalog"


def upgrade() -> None:
    op.add_column("uploads", sa.Column("object_modified_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("uploads", sa.Column("batch_key", sa.Text()), schema=SCHEMA)
    op.add_column("uploads", sa.Column("queued_at", sa.DateTime(timezone=True)), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("uploads", "queued_at", schema=SCHEMA)
    op.drop_column("uploads", "batch_key", schema=SCHEMA)
    op.drop_column("uploads", "object_modified_at", schema=SCHEMA)
