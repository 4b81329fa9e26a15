"""uploads: where rejected upload bytes are kept (quarantine area) and when retention removed them

Revision ID: 0005_uploads_quarantine
Revises: 0008_lineage
Create Date: 2026-12-01

Adds three nullable columns to `quarantine`, so existing rows are unchanged (they never had bytes kept):
`storage_key` (the `quarantine/...` key holding the rejected bytes), `quarantined_at` (when they were moved
there; the `quarantined_uploads` retention policy counts from it) and `purged_at` (when retention deleted
them; the row itself, the record of what was refused and why, stays).

Existing installs: uploads rejected before this revision still have their bytes at the upload key, which
nothing would ever remove. They are put back to `confirmed` (except those rejected because no object
existed) so the upload sensor batches them once more: each is validated again and, if still refused, its
bytes move to the quarantine area like any new rejection (if the rules now accept it, it is processed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_uploads_quarantine"
down_revision = "0008_lineage"
branch_labels = None
depends_on = None

S = "media_catalog"


def upgrade() -> None:
    op.add_column("quarantine", sa.Column("storage_key", sa.Text(), nullable=True), schema=S)
    op.add_column("quarantine", sa.Column("quarantined_at", sa.DateTime(timezone=True)), schema=S)
    op.add_column("quarantine", sa.Column("purged_at", sa.DateTime(timezone=True)), schema=S)
    op.create_index(
        "ix_quarantine_kept_bytes",
        "quarantine",
        ["quarantined_at"],
        schema=S,
        postgresql_where=sa.text("storage_key IS NOT NULL AND purged_at IS NULL"),
    )
    op.execute(
        f"""UPDATE {S}.uploads u SET status = 'confirmed', batch_key = NULL, queued_at = NULL
            WHERE u.status = 'rejected'
              AND NOT EXISTS (SELECT 1 FROM {S}.quarantine q
                              WHERE q.source_name = 'uploads' AND q.source_pk = u.id::text
                                AND q.reason_code = 'missing_object')"""
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_kept_bytes", table_name="quarantine", schema=S)
    op.drop_column("quarantine", "purged_at", schema=S)
    op.drop_column("quarantine", "quarantined_at", schema=S)
    op.drop_column("quarantine", "storage_key", schema=S)
