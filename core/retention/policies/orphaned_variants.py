"""Variants whose original is deleted (by any earlier policy or run)."""

from __future__ import annotations

from core.retention import actions
from core.retention.context import PolicyResult, SweepContext


def run(ctx: SweepContext, result: PolicyResult) -> None:
    actions.delete_variants(ctx, result, "original deleted")
