"""retry_transient retries only what is worth retrying, backs off, and gives up loudly."""

from __future__ import annotations

import pytest

from core.objectstore.base import ObjectNotFound, ObjectStoreError, TransientStorageError
from core.objectstore.retry import backoff_delay, retry_transient


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_returns_the_result_without_sleeping_when_the_first_call_succeeds() -> None:
    sleeps: list[float] = []
    assert retry_transient(Flaky(), sleep=sleeps.append) == "ok"
    assert sleeps == []


def test_retries_transient_errors_until_the_call_succeeds() -> None:
    sleeps: list[float] = []
    fn = Flaky(TransientStorageError("slow down"), TransientStorageError("503"))

    assert retry_transient(fn, attempts=5, sleep=sleeps.append) == "ok"
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_reraises_the_last_transient_error_after_the_final_attempt() -> None:
    sleeps: list[float] = []
    errors = [TransientStorageError(f"failure {n}") for n in range(3)]
    fn = Flaky(*errors)

    with pytest.raises(TransientStorageError) as caught:
        retry_transient(fn, attempts=3, sleep=sleeps.append)
    assert caught.value is errors[-1]
    assert fn.calls == 3
    assert len(sleeps) == 2  # no pointless sleep after the last attempt


@pytest.mark.parametrize("error", [ObjectNotFound("gone"), ObjectStoreError("denied"), ValueError("bug")])
def test_does_not_retry_errors_that_are_not_transient(error: Exception) -> None:
    sleeps: list[float] = []
    fn = Flaky(error)

    with pytest.raises(type(error)):
        retry_transient(fn, sleep=sleeps.append)
    assert fn.calls == 1
    assert sleeps == []


def test_delays_grow_exponentially_with_jitter_and_are_capped() -> None:
    sleeps: list[float] = []
    fn = Flaky(*[TransientStorageError("busy") for _ in range(6)])

    retry_transient(fn, attempts=7, base_delay=0.5, max_delay=4.0, sleep=sleeps.append)

    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(sleeps) == len(caps)
    for delay, cap in zip(sleeps, caps, strict=True):
        assert cap / 2 <= delay <= cap


def test_jitter_spreads_out_delays() -> None:
    delays = {backoff_delay(3, base_delay=1.0, max_delay=100.0) for _ in range(50)}
    assert len(delays) > 1
    assert all(4.0 <= delay <= 8.0 for delay in delays)


def test_at_least_one_attempt_is_required() -> None:
    with pytest.raises(ValueError, match="attempts"):
        retry_transient(Flaky(), attempts=0)
