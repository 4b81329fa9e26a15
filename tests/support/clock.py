"""The day a test runs in, asked when the test needs it.

A module constant taken at import goes stale when the suite runs across midnight UTC while the code under
test asks the clock (the sensor's "yesterday", a partition's end): `today()` keeps the two on one day.
"""

from __future__ import annotations

import datetime as dt


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def yesterday() -> dt.date:
    return today() - dt.timedelta(days=1)
