"""Retry storage calls that failed for a passing reason (throttling, 5xx, dropped connection), and count
what happened so an operator can tell a healthy store from one failing a third of its requests.

The S3 backend retries inside the store (`StoreRetry`), every call including a body read that breaks
halfway; the SDK's own retries are switched off so the two never multiply. When the store gives up it
raises `StoreUnavailable`, an `ObjectStoreError` that is deliberately *not* transient: callers' handling
of store errors applies, and an outer `retry_transient` does not retry it a second time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.objectstore.base import ObjectStoreError, TransientStorageError

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Above this share of requests that met a fault, summaries warn (a healthy store stays far below it).
FAULT_RATE_WARNING = 0.05


class StoreUnavailable(ObjectStoreError):
    """The store kept failing transiently until the retry budget (attempts or time) ran out.

    Distinct from "object missing" or "bytes wrong": the object may be fine, the store was unreachable.
    """


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
    """Call `fn`, retrying only TransientStorageError; the last failure is re-raised unchanged.

    For stores that do not retry themselves; a store that does raises StoreUnavailable when it gives up,
    which this does not retry again.
    """
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


@dataclass(frozen=True)
class RetryPolicy:
    """The store's one retry policy: bounded by attempts per call and by time per call."""

    attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 4.0
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")


@dataclass
class StoreStats:
    """Counts of one store object's requests, faults and retries (thread-safe; one store per run)."""

    requests: int = 0
    retried: int = 0
    resumed_reads: int = 0
    gave_up: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    #: requests by action ("put", "head", "get", "list", "delete"), e.g. requests per blob of a migration
    by_action: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def request(self, action: str = "") -> None:
        with self._lock:
            self.requests += 1
            if action:
                self.by_action[action] = self.by_action.get(action, 0) + 1

    def fault(self, kind: str, *, retrying: bool, resumed: bool = False) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1
            if retrying:
                self.retried += 1
                self.resumed_reads += int(resumed)
            else:
                self.gave_up += 1

    def counts(self) -> dict[str, Any]:
        """Plain counters (picklable), to carry one step's figures to the step that sums them."""
        with self._lock:
            return {
                "requests": self.requests,
                "retried": self.retried,
                "resumed_reads": self.resumed_reads,
                "gave_up": self.gave_up,
                "faults": dict(self.faults),
            }

    def add(self, counts: dict[str, Any]) -> None:
        """Add another step's `counts()` to these."""
        with self._lock:
            self.requests += int(counts.get("requests", 0))
            self.retried += int(counts.get("retried", 0))
            self.resumed_reads += int(counts.get("resumed_reads", 0))
            self.gave_up += int(counts.get("gave_up", 0))
            for kind, n in (counts.get("faults") or {}).items():
                self.faults[kind] = self.faults.get(kind, 0) + int(n)

    @property
    def fault_count(self) -> int:
        return sum(self.faults.values())

    @property
    def fault_rate(self) -> float:
        return self.fault_count / self.requests if self.requests else 0.0

    def as_metadata(self, prefix: str = "store") -> dict[str, Any]:
        """Flat figures for a run's metadata (`<prefix>_requests`, `_retried`, ...)."""
        with self._lock:
            faults = dict(sorted(self.faults.items()))
            return {
                f"{prefix}_requests": self.requests,
                f"{prefix}_requests_retried": self.retried,
                f"{prefix}_reads_resumed": self.resumed_reads,
                f"{prefix}_gave_up": self.gave_up,
                f"{prefix}_fault_rate": round(self.fault_rate, 4),
                f"{prefix}_faults": ", ".join(f"{k}: {v}" for k, v in faults.items()) or "none",
            }

    def warning(self, label: str, threshold: float = FAULT_RATE_WARNING) -> str | None:
        """A line for the run log when the fault rate passes `threshold`, else None."""
        if self.requests and self.fault_rate > threshold:
            return (
                f"{label}: {self.fault_count} of {self.requests} requests met a fault "
                f"({self.fault_rate:.0%} > {threshold:.0%}); {self.retried} retried, {self.gave_up} gave up "
                f"({', '.join(f'{k} {v}' for k, v in sorted(self.faults.items()))})"
            )
        return None


def stats_of(store: object) -> StoreStats:
    """The store's counters (a store without any - a test double - gets a fresh, empty set); given a
    StoreStats (figures summed over steps), that itself."""
    if isinstance(store, StoreStats):
        return store
    stats = getattr(store, "stats", None)
    return stats if isinstance(stats, StoreStats) else StoreStats()


def report_store_stats(log: Any, label: str, *stores_and_prefixes: tuple[object, str]) -> dict[str, Any]:
    """Metadata entries for each (store, prefix), and a warning on `log` for each store over the threshold."""
    metadata: dict[str, Any] = {}
    for store, prefix in stores_and_prefixes:
        stats = stats_of(store)
        metadata.update(stats.as_metadata(prefix))
        message = stats.warning(f"{label} ({prefix})")
        if message:
            log.warning(message)
    return metadata


class StoreRetry:
    """Run one store call under the policy, counting requests and faults in `stats`."""

    def __init__(
        self,
        policy: RetryPolicy,
        stats: StoreStats,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.stats = stats
        self.sleep = sleep
        self.clock = clock

    def call(
        self, what: str, fn: Callable[[], T], classify: Callable[[BaseException], ObjectStoreError]
    ) -> T:
        """`fn` until it succeeds, a non-transient error, or the budget runs out (then StoreUnavailable)."""
        started = self.clock()
        for attempt in range(self.policy.attempts):
            self.stats.request(what.split(" ", 1)[0])
            try:
                return fn()
            except Exception as exc:
                error = classify(exc)
                if not isinstance(error, TransientStorageError):
                    if error is exc:
                        raise
                    raise error from exc
                self.wait(what, error, attempt, started, fault_kind(exc, error))
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(
        self,
        what: str,
        error: ObjectStoreError,
        attempt: int,
        started: float,
        kind: str,
        *,
        resumed: bool = False,
    ) -> None:
        """Count the fault; sleep before the next attempt, or raise StoreUnavailable if none is left."""
        delay = backoff_delay(attempt, base_delay=self.policy.base_delay, max_delay=self.policy.max_delay)
        elapsed = self.clock() - started
        last = attempt + 1 >= self.policy.attempts or elapsed + delay > self.policy.max_seconds
        self.stats.fault(kind, retrying=not last, resumed=resumed)
        if last:
            raise StoreUnavailable(
                f"{what}: store unavailable after {attempt + 1} attempts in {elapsed:.1f}s: {error}"
            ) from error
        logger.info("%s: %s (attempt %d), retrying in %.2fs", what, error, attempt + 1, delay)
        self.sleep(delay)


def fault_kind(exc: BaseException, error: ObjectStoreError) -> str:
    """A short label for the metadata: throttled, server_error, timeout, connection."""
    text = str(error)
    if "SlowDown" in text or "Throttl" in text or "TooMany" in text or "(HTTP 429)" in text or "503" in text:
        return "throttled"
    if "(HTTP 5" in text or "InternalError" in text:
        return "server_error"
    if "Timeout" in type(exc).__name__ or "timeout" in text.lower():
        return "timeout"
    return "connection"
