"""The platform's catalog: what is stored where, who references it, and what every sweep did.

Content-addressed: one `stored_objects` row per distinct SHA-256, and one `object_references` row per
place that points at it, so identical content is stored once while
every owner's reference is kept. The schema is owned by Alembic (`migrations/`); these models mirror it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CATALOG_SCHEMA = "media_catalog"


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        schema=CATALOG_SCHEMA,
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


TZ = sa.DateTime(timezone=True)

#: What identifies a place holding an object (a reference) or a refused input (a quarantine record).
IDENTITY_COLUMNS = ("source_name", "source_schema", "source_table", "source_column", "source_pk", "json_path")
NOW = sa.text("now()")


class StoredObject(Base):
    """One distinct piece of content in object storage (an original image or file)."""

    __tablename__ = "stored_objects"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.CHAR(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    mime_type: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.Text)  # image | document | archive | other
    width: Mapped[int | None] = mapped_column(sa.Integer)
    height: Mapped[int | None] = mapped_column(sa.Integer)
    #: bytes after the image's end marker (camera trailer, appended data), kept in the object; NULL for
    #: non-images and objects catalogued before this was measured
    trailing_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    storage_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    provider: Mapped[str] = mapped_column(sa.Text)  # local | s3
    status: Mapped[str] = mapped_column(sa.Text, server_default="verified")  # verified | deleted
    legal_hold: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    deleted_at: Mapped[datetime | None] = mapped_column(TZ)
    last_accessed_at: Mapped[datetime | None] = mapped_column(TZ)
    #: the run (asset, partition) that produced this row; NULL = before lineage was recorded (0008_lineage)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.CheckConstraint("status IN ('verified', 'deleted')", name="status"),
        sa.Index("ix_stored_objects_status_created", "status", "created_at"),
        # the usage snapshot's largest files: read from the top instead of sorting a million rows
        sa.Index("ix_stored_objects_size", "size_bytes"),
    )


class ObjectReference(Base):
    """A place that refers to a stored object: a migrated row/JSON path, an upload, a generated document."""

    __tablename__ = "object_references"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    object_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_objects.id"), index=True)
    owner_id: Mapped[str] = mapped_column(sa.Text, index=True)
    origin: Mapped[str] = mapped_column(sa.Text)  # migration | upload | document
    # The place's identity (unique together): the configured source (or "uploads", "gdpr_exports"), the
    # app's schema, table, column and primary key, and the JSON path inside the column ("" for all of
    # it). Schema and column are "" for places that are not a column of the app's tables (uploads).
    source_name: Mapped[str] = mapped_column(sa.Text)
    source_schema: Mapped[str] = mapped_column(sa.Text, server_default="")
    source_table: Mapped[str] = mapped_column(sa.Text)
    source_column: Mapped[str] = mapped_column(sa.Text, server_default="")
    source_pk: Mapped[str] = mapped_column(sa.Text)
    json_path: Mapped[str] = mapped_column(sa.Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    source_deleted_at: Mapped[datetime | None] = mapped_column(TZ)  # soft-delete seen in the source row
    expires_at: Mapped[datetime | None] = mapped_column(TZ)  # generated documents
    released_at: Mapped[datetime | None] = mapped_column(TZ)  # the reference no longer holds the object
    #: the run (asset, partition) that produced this row; NULL = before lineage was recorded (0008_lineage)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint(*IDENTITY_COLUMNS, name="uq_object_references_origin"),
        sa.Index("ix_object_references_live", "object_id", postgresql_where=sa.text("released_at IS NULL")),
        # the usage snapshot groups live references per (object, owner) by reading this index in order
        # (index-only: the liveness columns are included) instead of hashing a million references
        sa.Index(
            "ix_object_references_object_owner",
            "object_id",
            "owner_id",
            postgresql_include=["created_at", "released_at"],
        ),
    )


class Upload(Base):
    """An object the app uploaded straight to the uploads area, tracked from pending to processed."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    upload_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    owner_id: Mapped[str] = mapped_column(sa.Text, index=True)
    declared_name: Mapped[str | None] = mapped_column(sa.Text)
    declared_mime: Mapped[str | None] = mapped_column(sa.Text)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    upload_date: Mapped[date] = mapped_column(sa.Date, index=True)
    # pending (requested, never confirmed) | confirmed | queued | processed | rejected | abandoned
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    object_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stored_objects.id"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    confirmed_at: Mapped[datetime | None] = mapped_column(TZ)
    processed_at: Mapped[datetime | None] = mapped_column(TZ)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Added by the variants capability (migrations/versions/variants_uploads.py): the object's
    # last_modified as last registered/processed (a changed listing means the key was overwritten), and
    # the sensor's batch (run_key) with when it was queued, so a batch is requested once.
    object_modified_at: Mapped[datetime | None] = mapped_column(TZ)
    batch_key: Mapped[str | None] = mapped_column(sa.Text)
    queued_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (sa.Index("ix_uploads_status_created", "status", "created_at"),)


class Variant(Base):
    """A derived rendition (thumbnail, WebP, AVIF) of a stored image, linked to its parent."""

    __tablename__ = "variants"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    parent_object_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_objects.id"))
    variant_name: Mapped[str] = mapped_column(sa.Text)  # thumb_150 | thumb_300 | thumb_600 | webp | avif
    spec_hash: Mapped[str] = mapped_column(sa.Text)  # hash of the spec entry that produced it
    status: Mapped[str] = mapped_column(sa.Text)  # ready | failed | skipped | deleted
    storage_key: Mapped[str | None] = mapped_column(sa.Text)
    sha256: Mapped[str | None] = mapped_column(sa.CHAR(64))
    mime_type: Mapped[str | None] = mapped_column(sa.Text)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    width: Mapped[int | None] = mapped_column(sa.Integer)
    height: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    deleted_at: Mapped[datetime | None] = mapped_column(TZ)
    #: the run (asset, partition) that produced this row; NULL = before lineage was recorded (0008_lineage)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("parent_object_id", "variant_name", name="uq_variants_parent_name"),
        sa.Index("ix_variants_status", "status"),
    )


class QuarantineRecord(Base):
    """A rejected input and why: nothing is silently dropped."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    source_name: Mapped[str] = mapped_column(sa.Text)  # identity as in ObjectReference
    source_schema: Mapped[str] = mapped_column(sa.Text, server_default="")
    source_table: Mapped[str] = mapped_column(sa.Text)
    source_column: Mapped[str] = mapped_column(sa.Text, server_default="")
    source_pk: Mapped[str] = mapped_column(sa.Text)
    json_path: Mapped[str] = mapped_column(sa.Text, server_default="")
    reason_code: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str | None] = mapped_column(sa.CHAR(64))
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    #: asset and partition of `run_id`'s run; NULL = before lineage was recorded (0008_lineage)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    # Added by migrations/versions/uploads_quarantine.py: rejected upload bytes kept under `quarantine/...`
    # (no URL can grant them), when they were moved there, and when retention deleted them.
    storage_key: Mapped[str | None] = mapped_column(sa.Text)
    quarantined_at: Mapped[datetime | None] = mapped_column(TZ)
    purged_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        sa.UniqueConstraint(*IDENTITY_COLUMNS, name="uq_quarantine_origin"),
        sa.Index(
            "ix_quarantine_kept_bytes",
            "quarantined_at",
            postgresql_where=sa.text("storage_key IS NOT NULL AND purged_at IS NULL"),
        ),
    )


class MigrationProgress(Base):
    """Keyset position of each migration source, so a killed run resumes where it stopped."""

    __tablename__ = "migration_progress"

    source_name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    last_pk: Mapped[str | None] = mapped_column(sa.Text)
    rows_scanned: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)


class Backup(Base):
    """One database dump or one day's object backup, with its manifest and verification state."""

    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)  # database | objects
    backup_date: Mapped[date] = mapped_column(sa.Date)
    # running | complete | verified | failed | corrupt | expired
    status: Mapped[str] = mapped_column(sa.Text)
    storage_key: Mapped[str | None] = mapped_column(sa.Text)
    manifest_key: Mapped[str | None] = mapped_column(sa.Text)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    sha256: Mapped[str | None] = mapped_column(sa.CHAR(64))
    object_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    verified_at: Mapped[datetime | None] = mapped_column(TZ)
    expired_at: Mapped[datetime | None] = mapped_column(TZ)
    error: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (sa.Index("ix_backups_kind_date", "kind", "backup_date"),)


class BackupObjectCopy(Base):
    """Content-addressed copy of an object in the backup location (identical content copied once)."""

    __tablename__ = "backup_object_copies"

    sha256: Mapped[str] = mapped_column(sa.CHAR(64), primary_key=True)
    backup_key: Mapped[str] = mapped_column(sa.Text)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    first_backup_id: Mapped[int | None] = mapped_column(sa.ForeignKey("backups.id"))
    copied_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    #: the run (asset, partition) that produced this row; NULL = before lineage was recorded (0008_lineage)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)


class LegalHold(Base):
    """Exempts an owner or one object from every retention policy while active."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(sa.Text, index=True)
    object_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stored_objects.id"), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    released_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (sa.CheckConstraint("owner_id IS NOT NULL OR object_id IS NOT NULL", name="target"),)


class RetentionAudit(Base):
    """One row per deletion (or would-be deletion in a dry run): what, whose, how big, why, when."""

    __tablename__ = "retention_audit"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.Text, index=True)
    policy: Mapped[str] = mapped_column(sa.Text)
    action: Mapped[str] = mapped_column(sa.Text)  # deleted | would_delete | skipped | warned
    target_type: Mapped[str] = mapped_column(
        sa.Text
    )  # object | variant | upload | reference | owner | backup | policy (a policy skipped, and why)
    target_id: Mapped[str] = mapped_column(sa.Text)
    storage_key: Mapped[str | None] = mapped_column(sa.Text)
    owner_id: Mapped[str | None] = mapped_column(sa.Text)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    dry_run: Mapped[bool] = mapped_column(sa.Boolean)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    #: asset and partition of `run_id`'s run; NULL = before lineage was recorded (0008_lineage)
    asset_key: Mapped[str | None] = mapped_column(sa.Text)
    partition_key: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.Index("ix_retention_audit_policy_created", "policy", "created_at"),
        sa.Index("ix_retention_audit_owner_action", "owner_id", "action"),
    )


class UsageSnapshot(Base):
    """Daily bytes and counts per owner, kind and location (database, originals, variants, backups)."""

    __tablename__ = "usage_snapshots"

    snapshot_date: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    owner_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    location: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    object_count: Mapped[int] = mapped_column(sa.BigInteger)


class CostReport(Base):
    """Cost of the measured storage per period and provider, from the configured price table."""

    __tablename__ = "cost_reports"

    period: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # day | month
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    scenario: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # current | base64_in_postgres | ...
    gb: Mapped[float] = mapped_column(sa.Double)
    monthly_cost_usd: Mapped[float] = mapped_column(sa.Double)
    price_per_gb_month: Mapped[float] = mapped_column(sa.Double)
    price_source_date: Mapped[date] = mapped_column(sa.Date)
    is_configured_provider: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())


class RetentionPendingDelete(Base):
    """A storage key the catalog already marks deleted whose bytes are not yet confirmed gone.

    Written in the same transaction that marks the row deleted; removed once `delete_keys` succeeds, so an
    interrupted sweep's rerun finishes exactly the deletes that were decided and nothing else.
    """

    __tablename__ = "retention_pending_deletes"

    storage_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    target_type: Mapped[str] = mapped_column(sa.Text)  # object | variant | upload
    target_id: Mapped[str] = mapped_column(sa.Text)
    run_id: Mapped[str] = mapped_column(sa.Text)
    queued_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class UsageSummary(Base):
    """One day's platform-wide usage: distinct totals per location, orphans, growth and the largest files."""

    __tablename__ = "usage_summaries"

    snapshot_date: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    database_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # base64 still held in source columns
    database_relation_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # pg_total_relation_size of sources
    original_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # distinct objects in object storage
    original_count: Mapped[int] = mapped_column(sa.BigInteger)
    referenced_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # one copy per live reference (pre-dedup)
    live_original_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # distinct objects with a live reference
    variant_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    variant_count: Mapped[int] = mapped_column(sa.BigInteger)
    variant_delivery_saved_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # original - WebP/AVIF, summed
    backup_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    backup_count: Mapped[int] = mapped_column(sa.BigInteger)
    orphan_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    orphan_count: Mapped[int] = mapped_column(sa.BigInteger)
    retention_deleted_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    owner_count: Mapped[int] = mapped_column(sa.BigInteger)
    peak_hour_bytes: Mapped[int] = mapped_column(sa.BigInteger)  # most bytes stored in one hour of the day
    growth_bytes_per_day: Mapped[float | None] = mapped_column(sa.Double)  # vs the previous snapshot
    largest_files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(TZ, server_default=NOW)


class OwnerQuota(Base):
    """One owner's usage against the quota of their tier, per snapshot day."""

    __tablename__ = "owner_quotas"

    snapshot_date: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    owner_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    tier: Mapped[str] = mapped_column(sa.Text)
    used_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    quota_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    used_fraction: Mapped[float] = mapped_column(sa.Double)


class CostSaving(Base):
    """Monthly saving by cause (migration, variants, deduplication, retention) per cost-report period."""

    __tablename__ = "cost_savings"

    period: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # day | month
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    cause: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    gb: Mapped[float] = mapped_column(sa.Double)
    monthly_usd: Mapped[float] = mapped_column(sa.Double)
    explanation: Mapped[str] = mapped_column(sa.Text)


class CostProjection(Base):
    """Projected monthly cost at N users from the measured per-user usage, per scenario."""

    __tablename__ = "cost_projections"

    period: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    users: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    scenario: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # base64_in_postgres | object_storage
    database_gb: Mapped[float] = mapped_column(sa.Double)
    object_storage_gb: Mapped[float] = mapped_column(sa.Double)
    monthly_cost_usd: Mapped[float] = mapped_column(sa.Double)
