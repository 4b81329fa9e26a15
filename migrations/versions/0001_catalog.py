"""catalog for migration, variants, uploads, backups, retention and usage

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "backups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("backup_date", sa.Date(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("manifest_key", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.CHAR(length=64), nullable=True),
        sa.Column("object_count", sa.BigInteger(), nullable=True),
        sa.Column("manifest", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
        schema="media_catalog",
    )
    op.create_index(
        "ix_backups_kind_date", "backups", ["kind", "backup_date"], unique=False, schema="media_catalog"
    )
    op.create_table(
        "cost_reports",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("gb", sa.Double(), nullable=False),
        sa.Column("monthly_cost_usd", sa.Double(), nullable=False),
        sa.Column("price_per_gb_month", sa.Double(), nullable=False),
        sa.Column("price_source_date", sa.Date(), nullable=False),
        sa.Column("is_configured_provider", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint(
            "period", "period_start", "provider", "scenario", name=op.f("pk_cost_reports")
        ),
        schema="media_catalog",
    )
    op.create_table(
        "migration_progress",
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("last_pk", sa.Text(), nullable=True),
        sa.Column("rows_scanned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source_name", name=op.f("pk_migration_progress")),
        schema="media_catalog",
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_table", sa.Text(), nullable=False),
        sa.Column("source_pk", sa.Text(), nullable=False),
        sa.Column("json_path", sa.Text(), server_default="", nullable=False),
        sa.Column("reason_code", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("sha256", sa.CHAR(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("source_table", "source_pk", "json_path", name="uq_quarantine_origin"),
        schema="media_catalog",
    )
    op.create_table(
        "retention_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_type", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_audit")),
        schema="media_catalog",
    )
    op.create_index(
        "ix_retention_audit_policy_created",
        "retention_audit",
        ["policy", "created_at"],
        unique=False,
        schema="media_catalog",
    )
    op.create_index(
        op.f("ix_retention_audit_run_id"), "retention_audit", ["run_id"], unique=False, schema="media_catalog"
    )
    op.create_table(
        "stored_objects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="verified", nullable=False),
        sa.Column("legal_hold", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('verified', 'deleted')", name=op.f("ck_stored_objects_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_objects")),
        sa.UniqueConstraint("sha256", name=op.f("uq_stored_objects_sha256")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_stored_objects_storage_key")),
        schema="media_catalog",
    )
    op.create_index(
        "ix_stored_objects_status_created",
        "stored_objects",
        ["status", "created_at"],
        unique=False,
        schema="media_catalog",
    )
    op.create_table(
        "usage_snapshots",
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("object_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "snapshot_date", "owner_id", "kind", "location", name=op.f("pk_usage_snapshots")
        ),
        schema="media_catalog",
    )
    op.create_table(
        "backup_object_copies",
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("backup_key", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("first_backup_id", sa.BigInteger(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_backup_id"],
            ["media_catalog.backups.id"],
            name=op.f("fk_backup_object_copies_first_backup_id_backups"),
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_backup_object_copies")),
        schema="media_catalog",
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("object_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "owner_id IS NOT NULL OR object_id IS NOT NULL", name=op.f("ck_legal_holds_target")
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["media_catalog.stored_objects.id"],
            name=op.f("fk_legal_holds_object_id_stored_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
        schema="media_catalog",
    )
    op.create_index(
        op.f("ix_legal_holds_object_id"), "legal_holds", ["object_id"], unique=False, schema="media_catalog"
    )
    op.create_index(
        op.f("ix_legal_holds_owner_id"), "legal_holds", ["owner_id"], unique=False, schema="media_catalog"
    )
    op.create_table(
        "object_references",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_table", sa.Text(), nullable=False),
        sa.Column("source_pk", sa.Text(), nullable=False),
        sa.Column("json_path", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source_deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["media_catalog.stored_objects.id"],
            name=op.f("fk_object_references_object_id_stored_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_object_references")),
        sa.UniqueConstraint("source_table", "source_pk", "json_path", name="uq_object_references_origin"),
        schema="media_catalog",
    )
    op.create_index(
        "ix_object_references_live",
        "object_references",
        ["object_id"],
        unique=False,
        schema="media_catalog",
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_index(
        op.f("ix_object_references_object_id"),
        "object_references",
        ["object_id"],
        unique=False,
        schema="media_catalog",
    )
    op.create_index(
        op.f("ix_object_references_owner_id"),
        "object_references",
        ["owner_id"],
        unique=False,
        schema="media_catalog",
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("upload_key", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("declared_name", sa.Text(), nullable=True),
        sa.Column("declared_mime", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("upload_date", sa.Date(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["media_catalog.stored_objects.id"],
            name=op.f("fk_uploads_object_id_stored_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("upload_key", name=op.f("uq_uploads_upload_key")),
        schema="media_catalog",
    )
    op.create_index(
        op.f("ix_uploads_owner_id"), "uploads", ["owner_id"], unique=False, schema="media_catalog"
    )
    op.create_index(
        "ix_uploads_status_created", "uploads", ["status", "created_at"], unique=False, schema="media_catalog"
    )
    op.create_index(
        op.f("ix_uploads_upload_date"), "uploads", ["upload_date"], unique=False, schema="media_catalog"
    )
    op.create_table(
        "variants",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("parent_object_id", sa.BigInteger(), nullable=False),
        sa.Column("variant_name", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("sha256", sa.CHAR(length=64), nullable=True),
        sa.Column("mime_type", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_object_id"],
            ["media_catalog.stored_objects.id"],
            name=op.f("fk_variants_parent_object_id_stored_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variants")),
        sa.UniqueConstraint("parent_object_id", "variant_name", name="uq_variants_parent_name"),
        schema="media_catalog",
    )
    op.create_index("ix_variants_status", "variants", ["status"], unique=False, schema="media_catalog")


def downgrade() -> None:

    op.drop_index("ix_variants_status", table_name="variants", schema="media_catalog")
    op.drop_table("variants", schema="media_catalog")
    op.drop_index(op.f("ix_uploads_upload_date"), table_name="uploads", schema="media_catalog")
    op.drop_index("ix_uploads_status_created", table_name="uploads", schema="media_catalog")
    op.drop_index(op.f("ix_uploads_owner_id"), table_name="uploads", schema="media_catalog")
    op.drop_table("uploads", schema="media_catalog")
    op.drop_index(
        op.f("ix_object_references_owner_id"), table_name="object_references", schema="media_catalog"
    )
    op.drop_index(
        op.f("ix_object_references_object_id"), table_name="object_references", schema="media_catalog"
    )
    op.drop_index(
        "ix_object_references_live",
        table_name="object_references",
        schema="media_catalog",
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.drop_table("object_references", schema="media_catalog")
    op.drop_index(op.f("ix_legal_holds_owner_id"), table_name="legal_holds", schema="media_catalog")
    op.drop_index(op.f("ix_legal_holds_object_id"), table_name="legal_holds", schema="media_catalog")
    op.drop_table("legal_holds", schema="media_catalog")
    op.drop_table("backup_object_copies", schema="media_catalog")
    op.drop_table("usage_snapshots", schema="media_catalog")
    op.drop_index("ix_stored_objects_status_created", table_name="stored_objects", schema="media_catalog")
    op.drop_table("stored_objects", schema="media_catalog")
    op.drop_index(op.f("ix_retention_audit_run_id"), table_name="retention_audit", schema="media_catalog")
    op.drop_index("ix_retention_audit_policy_created", table_name="retention_audit", schema="media_catalog")
    op.drop_table("retention_audit", schema="media_catalog")
    op.drop_table("quarantine", schema="media_catalog")
    op.drop_table("migration_progress", schema="media_catalog")
    op.drop_table("cost_reports", schema="media_catalog")
    op.drop_index("ix_backups_kind_date", table_name="backups", schema="media_catalog")
    op.drop_table("backups", schema="media_catalog")
