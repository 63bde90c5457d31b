"""Test connection: a destination's cheap authenticated request, sent now, and what the
vendor answered, redacted.

Nothing is stored and nothing is retried: the result is shown to whoever saved the
integration (an admin message) or asked the API. The request goes through the same
SSRF-guarded client as deliveries.
"""

from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from django.db import models

from integrations.delivery import http, planning
from integrations.delivery.redact import Redactor
from integrations.models import Integration

SNIPPET_LIMIT = 300


class ConnectionStatus(models.TextChoices):
    OK = "ok", "Connected"
    FAILED = "failed", "Failed"
    UNAVAILABLE = "unavailable", "No test available"


@dataclass(frozen=True)
class ConnectionTestResult:
    status: ConnectionStatus
    # A sentence for the CSM: what was sent and what came back, or why nothing was sent.
    message: str
    note: str = ""
    method: str = ""
    url: str = ""
    http_status: int | None = None
    response: str = ""
    duration_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == ConnectionStatus.OK

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}


class _Sent(TypedDict):
    """The fields of a result that describe the request sent."""

    note: str
    method: str
    url: str
    duration_ms: int


def check_connection(integration: Integration) -> ConnectionTestResult:
    """Send the integration's connection test; never raises for the vendor's answer."""
    destination = integration.destination
    note = destination.connection_test_note
    try:
        request = destination.connection_test(planning.integration_config(integration))
    except KeyError as exc:
        return ConnectionTestResult(
            ConnectionStatus.FAILED, f"Not tested: the setting {exc} is missing.", note
        )
    if request is None:
        return ConnectionTestResult(
            ConnectionStatus.UNAVAILABLE,
            f"{destination.label} offers no request that checks the settings.",
            note,
        )
    redactor = Redactor.for_integration(integration)
    exchange = http.send(request)
    url = redactor.url(request.url)
    common: _Sent = {
        "note": note,
        "method": request.method,
        "url": url,
        "duration_ms": round(exchange.duration_ms),
    }
    if exchange.status is None:
        error = redactor.text(exchange.error)
        message = f"{request.method} {url} got no answer: {error}."
        return ConnectionTestResult(ConnectionStatus.FAILED, message, **common)
    snippet = redactor.body(" ".join(exchange.body.split()))[:SNIPPET_LIMIT]
    answered = f"{destination.label} answered {exchange.status} to {request.method} {url}"
    if 200 <= exchange.status < 300:
        return ConnectionTestResult(
            ConnectionStatus.OK,
            f"{answered}: the settings work.",
            http_status=exchange.status,
            response=snippet,
            **common,
        )
    return ConnectionTestResult(
        ConnectionStatus.FAILED,
        f"{answered}{': ' + snippet if snippet else '.'}",
        http_status=exchange.status,
        response=snippet,
        **common,
    )
