"""Progress of long work (migrations, backups, sweeps, variant batches), reported at a bounded rate.

A migration of gigabytes runs for minutes; without this its run log is silent until it ends. The
reporter is fed as work completes (`advance`) and emits one line at most every `every_seconds`: done and
total items, megabytes, rate and an estimate of the time left. It knows nothing of Dagster: the asset
layer hands it `context.log.info`; the quick start hands it a terminal progress bar.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MB = 1024 * 1024
#: A long run logs its progress at least this often (seconds); MEDIA_PROGRESS_SECONDS overrides it.
DEFAULT_EVERY_SECONDS = 10.0


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`: short enough for a log line, exact enough for an ETA."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class ProgressSnapshot:
    """What has been done so far, and what it implies."""

    label: str
    unit: str
    done: int
    total: int | None
    done_bytes: int
    total_bytes: int | None
    elapsed_seconds: float

    @property
    def fraction(self) -> float | None:
        """Share done, by bytes when both byte figures are known (rows differ wildly in size)."""
        if self.total_bytes:
            return min(1.0, self.done_bytes / self.total_bytes)
        if self.total:
            return min(1.0, self.done / self.total)
        return None

    @property
    def eta_seconds(self) -> float | None:
        fraction = self.fraction
        if not fraction or self.elapsed_seconds <= 0:
            return None
        return self.elapsed_seconds * (1 - fraction) / fraction

    def line(self) -> str:
        """One human line: `stories: 120/867 rows (14 %), 230.1/1,886.0 MB, 23.9 MB/s, ETA 1m12s`."""
        items = f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "") + f" {self.unit}"
        parts = [items]
        fraction = self.fraction
        if fraction is not None:
            parts[0] += f" ({fraction * 100:.0f} %)"
        if self.done_bytes or self.total_bytes:
            mb = f"{self.done_bytes / MB:,.1f}"
            if self.total_bytes is not None:
                mb += f"/{self.total_bytes / MB:,.1f}"
            parts.append(f"{mb} MB")
        if self.elapsed_seconds > 0:
            if self.done_bytes:
                parts.append(f"{self.done_bytes / MB / self.elapsed_seconds:,.1f} MB/s")
            else:
                parts.append(f"{self.done / self.elapsed_seconds:,.1f} {self.unit}/s")
        eta = self.eta_seconds
        if eta is not None and fraction is not None and fraction < 1:
            parts.append(f"ETA {format_duration(eta)}")
        elif fraction is not None and fraction >= 1:
            parts.append(f"in {format_duration(self.elapsed_seconds)}")
        return f"{self.label}: " + ", ".join(parts)


class ProgressReporter:
    """Thread-safe counter that calls `emit` with a snapshot at most every `every_seconds`.

    Workers call `advance` from several threads; the first call past the interval emits (outside the
    lock, so a slow log handler never blocks the others). `finish` always emits the final figures.
    """

    def __init__(
        self,
        label: str,
        emit: Callable[[ProgressSnapshot], None],
        *,
        unit: str = "rows",
        total: int | None = None,
        total_bytes: int | None = None,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.total_bytes = total_bytes
        self.every_seconds = every_seconds
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_emitted = self._started
        self._done = 0
        self._done_bytes = 0
        self.emitted = 0

    def _snapshot(self, now: float) -> ProgressSnapshot:
        return ProgressSnapshot(
            label=self.label,
            unit=self.unit,
            done=self._done,
            total=self.total,
            done_bytes=self._done_bytes,
            total_bytes=self.total_bytes,
            elapsed_seconds=now - self._started,
        )

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        now = self._clock()
        with self._lock:
            self._done += items
            self._done_bytes += nbytes
            if now - self._last_emitted < self.every_seconds:
                return
            self._last_emitted = now
            snapshot = self._snapshot(now)
            self.emitted += 1
        self._emit(snapshot)

    @contextmanager
    def ticking(self) -> Iterator[ProgressReporter]:
        """Within the block, also emit from a background thread whenever nothing was emitted for
        `every_seconds`: one long step (a big table, an upload) does not leave the log silent."""
        if self.every_seconds <= 0:
            yield self
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.every_seconds / 2):
                now = self._clock()
                with self._lock:
                    if now - self._last_emitted < self.every_seconds:
                        continue
                    self._last_emitted = now
                    snapshot = self._snapshot(now)
                    self.emitted += 1
                self._emit(snapshot)

        thread = threading.Thread(target=tick, name=f"progress {self.label}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def finish(self, items: int = 0, nbytes: int = 0) -> ProgressSnapshot:
        """Emit the final figures (after counting the last `items`/`nbytes`, if given)."""
        now = self._clock()
        with self._lock:
            self._done += items
            self._done_bytes += nbytes
            snapshot = self._snapshot(now)
            self.emitted += 1
        self._emit(snapshot)
        return snapshot


def log_progress(log: Callable[[str], None]) -> Callable[[ProgressSnapshot], None]:
    """An `emit` that writes each snapshot as one line through a logger (e.g. `context.log.info`)."""
    return lambda snapshot: log(snapshot.line())


def progress_every_seconds() -> float:
    """Seconds between progress lines: MEDIA_PROGRESS_SECONDS (0 logs after every step), else 10."""
    raw = os.environ.get("MEDIA_PROGRESS_SECONDS", "").strip()
    if not raw:
        return DEFAULT_EVERY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"MEDIA_PROGRESS_SECONDS must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"MEDIA_PROGRESS_SECONDS must not be negative, got {raw!r}")
    return value


def logged_progress(
    log: Callable[[str], None],
    label: str,
    *,
    unit: str = "rows",
    total: int | None = None,
    total_bytes: int | None = None,
) -> ProgressReporter:
    """A reporter writing to a run's log (`context.log.info`) at the configured interval."""
    return ProgressReporter(
        label,
        log_progress(log),
        unit=unit,
        total=total,
        total_bytes=total_bytes,
        every_seconds=progress_every_seconds(),
    )


class AnnouncedSteps:
    """For work that announces each step as it starts (the retention sweep: `retention: <policy>`): log
    the announcement and count the step before it as done; progress lines carry the current step's
    announcement as their label (`retention: inactive_users: 2/6 policies (33 %), ...`)."""

    def __init__(self, reporter: ProgressReporter, log: Callable[[str], None]) -> None:
        self.reporter = reporter
        self._log = log
        self._started = False

    def __call__(self, message: str) -> None:
        self._log(message)
        self.reporter.label = message
        if self._started:
            self.reporter.advance()
        self._started = True

    def finish(self) -> ProgressSnapshot:
        """The last announced step is done too."""
        snapshot = self.reporter.finish(items=int(self._started))
        self._started = False
        return snapshot
