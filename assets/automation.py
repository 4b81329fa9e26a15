"""Declarative automation: the graph, not the clock, orders the work. Evaluated by `media_automation`
(orchestration/sensors.py); every condition targets the latest day (or month) of the shared calendar.

- `after_upstreams`: an upstream (or one of `only`) materialized since this asset last ran, none of them
  is running or about to run, and this asset is not running. Variants follow migrations and processed
  uploads; the kept backup set follows backups; usage follows backups and retention; reports follow usage.
- `catch_up_after_upstreams`: at most once per cron tick (hourly), after one of `only` materialized, once
  upstreams are quiet. Variants follow upload batches this way: each upload run renders its own
  uploads' full sets, so this run only catches what one missed (storage down, a crash) and must not race
  a burst's runs for the same originals and cores. (Dagster's "in progress" follows the latest run of a
  partition, so with several upload runs of one day the earliest to finish would look like "no upload
  run in progress" and let a variants run start beside the others.)
- `daily_after_upstreams`: once per day, after the calendar's `daily_cron`, as soon as no upstream is
  running or requested (the day's migrations and variants are done). Backups use it.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetKey, AssetSelection, AutomationCondition

from assets.partitions import CALENDAR

_UPSTREAMS_QUIET = (
    ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
    & ~AutomationCondition.in_progress()
)


def _upstreams_quiet(running_ok: Sequence[AssetKey]) -> AutomationCondition:
    if not running_ok:
        return _UPSTREAMS_QUIET
    return (
        ~AutomationCondition.any_deps_in_progress().ignore(AssetSelection.assets(*running_ok))
        & ~AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
        & ~AutomationCondition.in_progress()
    )


def after_upstreams(
    label: str, only: Sequence[AssetKey] = (), running_ok: Sequence[AssetKey] = ()
) -> AutomationCondition:
    """`running_ok`: upstreams whose runs in progress do not hold this asset back (a steady stream of
    short runs, like upload batches every few seconds, would otherwise keep it waiting indefinitely)."""
    updated = AutomationCondition.any_deps_updated()
    if only:
        updated = updated.allow(AssetSelection.assets(*only))
    return (
        AutomationCondition.in_latest_time_window()
        & updated.since_last_handled()
        & _upstreams_quiet(running_ok)
    ).with_label(label)


def catch_up_after_upstreams(label: str, only: Sequence[AssetKey], cron: str) -> AutomationCondition:
    """Reset on a request only, not `since_last_handled()`: Dagster keys a `since` condition's state by
    the types of its parts and ignores `allow()`, so beside `after_upstreams(only=...)` on the same asset
    the two "updated since handled" would be one state, and an upload batch would set off the
    after-a-migration branch (seen as variants runs racing a burst's upload runs)."""
    updated = (
        AutomationCondition.any_deps_updated()
        .allow(AssetSelection.assets(*only))
        .since(AutomationCondition.newly_requested())
    )
    return (
        AutomationCondition.in_latest_time_window()
        & AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & updated
        & _UPSTREAMS_QUIET
    ).with_label(label)


def daily_after_upstreams(cron: str = CALENDAR.daily_cron) -> AutomationCondition:
    return (
        AutomationCondition.in_latest_time_window()
        & AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & _UPSTREAMS_QUIET
    ).with_label(f"daily after {cron} UTC, once upstreams are done")
