"""Retry storage calls that failed for a passing reason (throttling, 5xx, dropped connection)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from core.objectstore.base import TransientStorageError

T = TypeVar("T")

logger = logging.getLogger(__name__)


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float) -> float:
    """Delay before retry number `attempt` (0-based): capped exponential, then "equal jitter".

    Half the delay is fixed so retries always back off; the random half spreads out workers that failed
    together so they do not hit the throttled service again in lockstep.
    """
    capped = min(max_delay, base_delay * (2**attempt))
    return capped / 2 + random.uniform(0, capped / 2)


def retry_transient(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn`, retrying only TransientStorageError; the last failure is re-raised unchanged."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(attempts):
        try:
            return fn()
        except TransientStorageError as exc:
            if attempt == attempts - 1:
                raise
            delay = backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay)
            logger.warning(
                "transient storage error (attempt %d of %d), retrying in %.2fs: %s",
                attempt + 1,
                attempts,
                delay,
                exc,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises
