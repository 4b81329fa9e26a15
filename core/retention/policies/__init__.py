"""Retention policies: one function per policy over the sweep's shared context, and the registry.

Adding a policy: a module here with `run(ctx, result)`, one entry in REGISTRY, and its settings and
place in POLICY_ORDER in core/retention/config.py. The configuration names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

from core.retention.config import (
    ABANDONED_UPLOADS,
    EXPIRED_DOCUMENTS,
    INACTIVE_USERS,
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
    POLICY_ORDER,
    PRESETS,
    QUARANTINED_UPLOADS,
    SOFT_DELETED_ROWS,
    RetentionConfig,
    RetentionConfigError,
    load_retention_config,
    months_before,
    parse_retention_config,
)
from core.retention.context import PolicyResult, SweepContext
from core.retention.policies import (
    abandoned_uploads,
    expired_documents,
    inactive_users,
    orphaned_objects,
    orphaned_variants,
    quarantined_uploads,
    soft_deleted_rows,
)

Policy = Callable[[SweepContext, PolicyResult], None]

#: policy name -> what it does in one sweep (run in POLICY_ORDER).
REGISTRY: dict[str, Policy] = {
    EXPIRED_DOCUMENTS: expired_documents.run,
    SOFT_DELETED_ROWS: soft_deleted_rows.run,
    INACTIVE_USERS: inactive_users.run,
    ABANDONED_UPLOADS: abandoned_uploads.run,
    ORPHANED_OBJECTS: orphaned_objects.run,
    ORPHANED_VARIANTS: orphaned_variants.run,
    QUARANTINED_UPLOADS: quarantined_uploads.run,
}

__all__ = [
    "ABANDONED_UPLOADS",
    "EXPIRED_DOCUMENTS",
    "INACTIVE_USERS",
    "ORPHANED_OBJECTS",
    "ORPHANED_VARIANTS",
    "POLICY_ORDER",
    "PRESETS",
    "QUARANTINED_UPLOADS",
    "REGISTRY",
    "SOFT_DELETED_ROWS",
    "Policy",
    "RetentionConfig",
    "RetentionConfigError",
    "load_retention_config",
    "months_before",
    "parse_retention_config",
]
