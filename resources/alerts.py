"""Where alerts go, as a Dagster resource (values from the environment: resources/settings.py)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from core.alerts import AlertTargets


class AlertsResource(ConfigurableResource):
    """A Slack-compatible webhook and/or SMTP e-mail; both empty = alerts are not delivered anywhere."""

    webhook_url: str = Field(default="", description="Slack-compatible incoming webhook URL (a secret)")
    email_to: str = Field(default="", description="Comma-separated recipients of alert e-mails")
    email_from: str = Field(default="media-platform@localhost", description="Sender of alert e-mails")
    smtp_host: str = Field(default="", description="SMTP server for alert e-mails")
    smtp_port: int = Field(default=25, description="SMTP port (587 with STARTTLS)")
    smtp_username: str = Field(default="", description="SMTP login, if the server needs one")
    smtp_password: str = Field(default="", description="SMTP password (a secret)")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS")
    ui_base_url: str = Field(
        default="http://localhost:3000", description="Dagster UI address, for links in alerts"
    )

    def targets(self) -> AlertTargets:
        return AlertTargets(
            webhook_url=self.webhook_url,
            email_to=tuple(a.strip() for a in self.email_to.split(",") if a.strip()),
            email_from=self.email_from,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_username=self.smtp_username,
            smtp_password=self.smtp_password,
            smtp_starttls=self.smtp_starttls,
        )
