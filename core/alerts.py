"""Alert delivery: a Slack-compatible webhook and/or e-mail over SMTP, with no Dagster in it.

Failed asset checks (the seeds' WARN checks: quota, growth, budget, pending uploads, failed variants; and
the ERROR checks of backups) and failed runs only help if someone hears about them. `deliver` sends one
alert to every configured target and raises `AlertDeliveryError` if any target did not take it, so the
caller (orchestration/alerts.py) keeps the alert and tries again on its next tick.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

SEVERITY_MARK = {"warning": ":warning:", "error": ":rotating_light:"}


class AlertDeliveryError(RuntimeError):
    """At least one configured target did not accept the alert (it will be retried)."""


class AlertConfigError(ValueError):
    """The alert targets are configured inconsistently (e.g. recipients without an SMTP server)."""


@dataclass(frozen=True)
class Alert:
    """One problem, to be delivered once: `key` identifies it across ticks (e.g. `run:<id>`)."""

    key: str
    severity: str  # warning | error
    title: str
    text: str
    url: str | None = None

    def slack_payload(self) -> dict[str, object]:
        """Slack's incoming-webhook JSON (`text` is what Slack, Mattermost, Rocket.Chat and Teams' Slack
        endpoints all read; `blocks` is Slack's richer layout of the same content)."""
        mark = SEVERITY_MARK.get(self.severity, "")
        link = f"\n<{self.url}|Open in Dagster>" if self.url else ""
        text = f"{mark} *{self.title}*\n{self.text}{link}".strip()
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }

    def email(self, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{self.severity.upper()}] {self.title}"
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["X-Alert-Key"] = self.key
        body = self.text + (f"\n\nOpen in Dagster: {self.url}" if self.url else "")
        message.set_content(body + "\n")
        return message


@dataclass(frozen=True)
class AlertTargets:
    """Where alerts go. Empty = nowhere (the sensor says so and does nothing)."""

    webhook_url: str = ""
    email_to: tuple[str, ...] = ()
    email_from: str = "media-platform@localhost"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.email_to and not self.smtp_host:
            raise AlertConfigError("ALERT_EMAIL_TO is set but SMTP_HOST is not: e-mail alerts need a server")
        if self.webhook_url and urlsplit(self.webhook_url).scheme not in ("http", "https"):
            raise AlertConfigError("ALERT_WEBHOOK_URL must be an http(s) URL")

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or self.email_to)

    def describe(self) -> str:
        """The targets without secrets (a Slack webhook URL is a credential: only its host is shown)."""
        parts = []
        if self.webhook_url:
            parts.append(f"webhook at {urlsplit(self.webhook_url).hostname}")
        if self.email_to:
            parts.append(f"e-mail to {', '.join(self.email_to)} via {self.smtp_host}:{self.smtp_port}")
        return " and ".join(parts) or "no target"


def post_webhook(alert: Alert, targets: AlertTargets) -> None:
    request = urllib.request.Request(
        targets.webhook_url,
        data=json.dumps(alert.slack_payload()).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=targets.timeout_seconds) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertDeliveryError(f"webhook unreachable: {reason}") from None
    if not 200 <= status < 300:
        raise AlertDeliveryError(f"webhook answered HTTP {status}")


def send_email(alert: Alert, targets: AlertTargets) -> None:
    try:
        with smtplib.SMTP(targets.smtp_host, targets.smtp_port, timeout=targets.timeout_seconds) as smtp:
            if targets.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if targets.smtp_username:
                smtp.login(targets.smtp_username, targets.smtp_password)
            smtp.send_message(alert.email(targets.email_from, targets.email_to))
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertDeliveryError(
            f"SMTP server {targets.smtp_host}:{targets.smtp_port} did not take the e-mail: {exc}"
        ) from None


def deliver(alert: Alert, targets: AlertTargets) -> list[str]:
    """Send to every configured target; raise AlertDeliveryError naming each one that failed."""
    delivered: list[str] = []
    failures: list[str] = []
    if targets.webhook_url:
        try:
            post_webhook(alert, targets)
            delivered.append("webhook")
        except AlertDeliveryError as exc:
            failures.append(str(exc))
    if targets.email_to:
        try:
            send_email(alert, targets)
            delivered.append("email")
        except AlertDeliveryError as exc:
            failures.append(str(exc))
    if failures:
        raise AlertDeliveryError("; ".join(failures))
    return delivered
