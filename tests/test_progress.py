"""Progress lines for long work: bounded rate, honest totals, a readable ETA."""

from __future__ import annotations

import threading

from core.progress import MB, ProgressReporter, ProgressSnapshot, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_emits_at_most_once_per_interval_however_often_work_completes() -> None:
    clock, lines = FakeClock(), []
    reporter = ProgressReporter("stories", lines.append, total=1000, every_seconds=10, clock=clock)
    for _ in range(120):  # 120 rows over 30 s: one emission per 10 s, not per row
        clock.now += 0.25
        reporter.advance()
    assert [snap.done for snap in lines] == [40, 80, 120]


def test_finish_always_reports_the_final_figures() -> None:
    clock, lines = FakeClock(), []
    reporter = ProgressReporter("files", lines.append, total=3, every_seconds=10, clock=clock)
    reporter.advance(3, nbytes=3 * MB)
    clock.now += 2
    final = reporter.finish()
    assert lines == [final]
    assert final.done == 3
    assert final.line() == "files: 3/3 rows (100 %), 3.0 MB, 1.5 MB/s, in 2s"


def test_line_gives_share_by_bytes_rate_and_eta() -> None:
    snap = ProgressSnapshot(
        label="stories",
        unit="rows",
        done=120,
        total=867,
        done_bytes=230 * MB,
        total_bytes=920 * MB,
        elapsed_seconds=10,
    )
    # 25 % of the bytes in 10 s: 30 s to go, although only 14 % of the rows are done
    assert snap.line() == "stories: 120/867 rows (25 %), 230.0/920.0 MB, 23.0 MB/s, ETA 30s"


def test_unknown_totals_still_give_counts_and_rate() -> None:
    snap = ProgressSnapshot("sweep", "objects", 5000, None, 0, None, 4.0)
    assert snap.line() == "sweep: 5,000 objects, 1,250.0 objects/s"
    assert snap.eta_seconds is None


def test_counts_from_many_threads_are_exact() -> None:
    reporter = ProgressReporter("variants", lambda _s: None, every_seconds=0)

    def work() -> None:
        for _ in range(1000):
            reporter.advance(1, nbytes=10)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = reporter.finish()
    assert (final.done, final.done_bytes) == (8000, 80000)


def test_durations_read_like_a_person_would_say_them() -> None:
    assert format_duration(42) == "42s"
    assert format_duration(185) == "3m05s"
    assert format_duration(2 * 3600 + 7 * 60) == "2h07m"
