"""`alert_sensor`: failed asset checks (WARN and ERROR) and failed runs reach a webhook and/or e-mail.

The seeds' alerts are asset checks: owner above 80 % of quota, storage growing > 10 GB/hour, cost over
budget (assets/usage.py), pending uploads > 100 and failed variants > 5 % (assets/uploads.py,
assets/variants.py), plus the backups' ERROR checks. This sensor reads their evaluations, and run failure
events, from the Dagster instance's event log after a cursor (the event's storage id), and delivers:

- once per problem: a check alerts when it starts failing and not again on every later failed
  evaluation; it is re-armed by an evaluation that passes. Every failed run alerts once.
- nothing configured (no ALERT_WEBHOOK_URL, no ALERT_EMAIL_TO): the sensor does nothing and says so.
- a target that does not answer: the error is logged and the cursor stays before the undelivered
  event, so the next tick tries it again (other targets may then receive that alert twice).

Why not Dagster's `run_failure_sensor`: it advances its cursor past a run even when the sensor function
raises, so an unreachable webhook would lose the alert; one event-log cursor covers both kinds of event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dagster import (
    AssetCheckSeverity,
    DagsterEventType,
    DefaultSensorStatus,
    EventLogRecord,
    EventRecordsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from core.alerts import Alert, AlertConfigError, AlertDeliveryError, AlertTargets, deliver
from resources.alerts import AlertsResource

#: Events read per kind and tick; a backlog drains over the next ticks.
BATCH = 200
NO_TARGET = (
    "no alert target configured: set ALERT_WEBHOOK_URL and/or ALERT_EMAIL_TO with SMTP_HOST"
    " (resources/settings.py); nothing is delivered"
)


@dataclass
class AlertCursor:
    """Storage ids already handled per event kind, and the checks already reported as failing."""

    checks_after: int = -1
    runs_after: int = -1
    failing: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> AlertCursor | None:
        if not text:
            return None
        raw = json.loads(text)
        return cls(int(raw["checks_after"]), int(raw["runs_after"]), dict(raw.get("failing", {})))

    def to_json(self) -> str:
        return json.dumps(
            {"checks_after": self.checks_after, "runs_after": self.runs_after, "failing": self.failing},
            sort_keys=True,
        )


def _records(context: SensorEvaluationContext, kind: DagsterEventType, after: int) -> list[EventLogRecord]:
    return list(
        context.instance.event_log_storage.get_event_records(
            EventRecordsFilter(event_type=kind, after_cursor=after), limit=BATCH, ascending=True
        )
    )


def _latest_id(context: SensorEvaluationContext, kind: DagsterEventType) -> int:
    records = context.instance.event_log_storage.get_event_records(
        EventRecordsFilter(event_type=kind), limit=1, ascending=False
    )
    return records[0].storage_id if records else -1


def _simple_metadata(metadata: dict) -> str:
    """Numbers and short texts from a check's metadata, one per line (tables and charts are left out)."""
    lines = []
    for name, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, bool) or not isinstance(raw, int | float | str) or len(str(raw)) > 120:
            continue
        lines.append(f"{name}: {raw:,.4g}" if isinstance(raw, float) else f"{name}: {raw}")
    return "\n".join(lines)


def check_alert(
    context: SensorEvaluationContext, record: EventLogRecord, ui_base_url: str
) -> tuple[str, Alert | None]:
    """(problem key, alert if the evaluation failed) for an ASSET_CHECK_EVALUATION record."""
    entry = record.event_log_entry
    evaluation = entry.dagster_event.event_specific_data  # AssetCheckEvaluation
    key = f"check:{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    if evaluation.passed:
        return key, None
    severity = "warning" if evaluation.severity == AssetCheckSeverity.WARN else "error"
    partition = evaluation.partition
    if partition is None:  # a check evaluated by a partitioned asset's step: the run's partition
        run = context.instance.get_run_by_id(entry.run_id)
        partition = run.tags.get("dagster/partition") if run else None
    where = f" (partition {partition})" if partition else ""
    details = _simple_metadata(dict(evaluation.metadata))
    text = (evaluation.description or "The check failed.") + (f"\n{details}" if details else "")
    return key, Alert(
        key=key,
        severity=severity,
        title=f"{severity.capitalize()}: check {evaluation.check_name} failed on"
        f" {evaluation.asset_key.to_user_string()}{where}",
        text=text,
        url=f"{ui_base_url.rstrip('/')}/runs/{entry.run_id}",
    )


def run_failure_alert(context: SensorEvaluationContext, record: EventLogRecord, ui_base_url: str) -> Alert:
    entry = record.event_log_entry
    run = context.instance.get_run_by_id(entry.run_id)
    job = run.job_name if run else "unknown job"
    partition = run.tags.get("dagster/partition") if run else None
    reason = entry.dagster_event.message or entry.user_message or "the run failed"
    step_errors = []
    for failure in context.instance.all_logs(entry.run_id, of_type=DagsterEventType.STEP_FAILURE)[:3]:
        error = (
            getattr(failure.dagster_event.event_specific_data, "error", None)
            if failure.dagster_event
            else None
        )
        while error is not None and error.cause is not None:  # the user's exception, not Dagster's wrapper
            error = error.cause
        if error is not None:
            step_errors.append(f"{failure.step_key}: {error.message.strip()}")
    text = reason + "".join(f"\n{message[:500]}" for message in step_errors)
    return Alert(
        key=f"run:{entry.run_id}",
        severity="error",
        title=f"Run failed: {job}"
        + (f" (partition {partition})" if partition else "")
        + f", run {entry.run_id[:8]}",
        text=text,
        url=f"{ui_base_url.rstrip('/')}/runs/{entry.run_id}",
    )


def evaluate_alerts(context: SensorEvaluationContext, alerts: AlertsResource) -> SensorResult | SkipReason:
    """One tick: deliver what is new since the cursor, stop at the first delivery failure."""
    try:
        targets: AlertTargets = alerts.targets()
    except AlertConfigError as exc:
        context.log.error(f"alert targets misconfigured: {exc}")
        return SkipReason(f"alert targets misconfigured: {exc}")
    if not targets.configured:
        context.log.info(NO_TARGET)
        return SkipReason(NO_TARGET)

    cursor = AlertCursor.from_json(context.cursor)
    if cursor is None:
        cursor = AlertCursor(
            _latest_id(context, DagsterEventType.ASSET_CHECK_EVALUATION),
            _latest_id(context, DagsterEventType.RUN_FAILURE),
        )
        message = f"alerts start from now and go to {targets.describe()}"
        context.log.info(message)
        return SensorResult(cursor=cursor.to_json(), skip_reason=message)

    sent: list[str] = []
    error: str | None = None
    for record in _records(context, DagsterEventType.ASSET_CHECK_EVALUATION, cursor.checks_after):
        key, alert = check_alert(context, record, alerts.ui_base_url)
        if alert is None:
            if cursor.failing.pop(key, None) is not None:
                context.log.info(f"{key} passes again; its next failure will alert")
        elif key not in cursor.failing:
            try:
                deliver(alert, targets)
            except AlertDeliveryError as exc:
                error = f"could not deliver '{alert.title}' to {targets.describe()}: {exc}"
                break
            cursor.failing[key] = record.storage_id
            sent.append(alert.title)
        cursor.checks_after = record.storage_id
    if error is None:
        for record in _records(context, DagsterEventType.RUN_FAILURE, cursor.runs_after):
            alert = run_failure_alert(context, record, alerts.ui_base_url)
            try:
                deliver(alert, targets)
            except AlertDeliveryError as exc:
                error = f"could not deliver '{alert.title}' to {targets.describe()}: {exc}"
                break
            sent.append(alert.title)
            cursor.runs_after = record.storage_id

    for title in sent:
        context.log.info(f"alert sent to {targets.describe()}: {title}")
    if error is not None:
        context.log.error(f"{error}; retrying on the next tick")
    summary = f"{len(sent)} alert(s) sent" + (f"; {error}" if error else "")
    return SensorResult(cursor=cursor.to_json(), skip_reason=summary)


@sensor(
    name="alert_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Delivers failed asset checks (WARN and ERROR) and failed runs to ALERT_WEBHOOK_URL"
        " (Slack-compatible) and/or ALERT_EMAIL_TO over SMTP, once per problem; does nothing while"
        " neither is configured."
    ),
)
def alert_sensor(context: SensorEvaluationContext, alerts: AlertsResource) -> SensorResult | SkipReason:
    return evaluate_alerts(context, alerts)


alert_sensors = [alert_sensor]
