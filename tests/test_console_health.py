"""The console sees an outage: the integration list (health column, Endpoint OK), the
integration page, the dashboard and the API show pending and retrying deliveries, the
oldest waiting event's age and the latest error, not only what was delivered or failed.

The repro: a ChurnZero integration whose Instance URL was saved as
``https://analytics.churnzero``; every delivery retries on a DNS error."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.delivery.health import State, health, summaries
from integrations.models import Delivery, Dispatch, Integration, WorkspaceMembership
from tests.outage import (
    UNRESOLVABLE,
    churnzero_traffic,
    resolve_nothing_but_loopback,
    unresolvable_churnzero,
)
from tests.test_admin_operations import cell
from tests.test_dashboard import table
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route

# What the worker records for a host that does not resolve.
DNS_ERROR = "Name or service not known"
CHANGELIST = reverse("admin:integrations_integration_changelist")
DASHBOARD = reverse("admin:integrations_dashboard")


@pytest.fixture
def outage(workspace, source, monkeypatch) -> Integration:
    """Three events retrying on a DNS error."""
    resolve_nothing_but_loopback(monkeypatch)
    churnzero = unresolvable_churnzero(workspace)
    churnzero_traffic(source, 3)
    deliver_due(churnzero)
    statuses = set(Delivery.objects.filter(integration=churnzero).values_list("status", flat=True))
    assert statuses == {Delivery.Status.RETRYING}
    return churnzero


def test_health_of_the_repro(outage):
    summary = health(outage)
    assert (summary.delivered, summary.failed, summary.retrying) == (0, 0, 3)
    assert summary.state == State.OUTAGE
    assert DNS_ERROR in summary.last_error
    assert f"connection failed ({UNRESOLVABLE})" in summary.last_error  # which host
    assert summary.oldest_waiting_seconds is not None


def test_the_integration_list_shows_the_outage_and_endpoint_ok_turns_red(csm, workspace, outage):
    healthy = make_integration(workspace, name="Quiet hook")
    text = csm.get(CHANGELIST).content.decode()
    health_cell = cell(text, "health_now", outage)
    assert ">Outage</strong>" in health_cell
    assert DNS_ERROR in re.search(r'title="([^"]*)"', health_cell).group(1)  # on hover
    assert "24 h: 0 delivered · 0 failed" in health_cell
    assert "now: 0 pending · 3 retrying<br>oldest waiting" in health_cell
    assert "icon-no" in cell(text, "endpoint_ok", outage)
    assert ">OK</strong>" in cell(text, "health_now", healthy)
    assert "icon-yes" in cell(text, "endpoint_ok", healthy)


def test_the_integration_list_takes_a_few_queries_whatever_the_number_of_integrations(
    csm, workspace, outage
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert csm.get(CHANGELIST).status_code == 200
        return len(captured)

    before = queries()
    for number in range(8):
        make_integration(workspace, name=f"More {number}")
    assert queries() == before


def test_the_integration_page_shows_the_backlog_and_the_latest_error(csm, outage):
    text = csm.get(reverse("admin:integrations_integration_change", args=[outage.pk]))
    text = text.content.decode()
    assert ">Outage</strong>" in text
    assert "3 retrying</a>" in text and "0 pending · oldest waiting" in text
    assert DNS_ERROR in text.split("Latest error:")[1][:200]


def test_the_dashboard_shows_the_outage(csm, outage):
    text = csm.get(DASHBOARD).content.decode()
    banner = text[text.index('id="outage-banner"') :]
    banner = banner[: banner.index("</div>")]
    assert "ChurnZero</a>: 0 pending, 3 retrying" in banner
    assert DNS_ERROR in banner
    assert re.search(r'id="waiting-now" class="ko">3<', text)
    (row,) = table(text, "health-table")
    assert row[:5] == ["ChurnZero", "Outage", "0", "3", row[4]]
    assert DNS_ERROR in row[5]
    today = table(text, "per-day-table")[-1]
    assert today[1:] == ["3", "0", "0", "3"]  # events, delivered, failed, retrying
    per_integration = table(text, "per-integration-table")[0]
    assert per_integration[8] == "0 / 0 / 3"


def test_events_waiting_for_their_first_attempt_are_pending(csm, workspace, source, settings):
    hook = make_integration(workspace, name="Hook")
    churnzero_traffic(source, 2)  # accepted, not routed yet
    assert summaries([hook])[hook.pk].pending == 2
    route()  # now in a dispatch, not attempted
    text = csm.get(DASHBOARD).content.decode()
    (row,) = table(text, "health-table")
    assert row[1:4] == ["Backlog", "2", "0"]
    assert ">Backlog</strong>" in cell(csm.get(CHANGELIST).content.decode(), "health_now", hook)
    # Waiting longer than HEALTH_OUTAGE_MINUTES is an outage, retries or not.
    old = Dispatch.objects.get(integration=hook).created_at - dt.timedelta(
        minutes=settings.HEALTH_OUTAGE_MINUTES + 1
    )
    Dispatch.objects.filter(integration=hook).update(
        created_at=old, waiting_reason="held back: the vendor answers slowly"
    )
    listed = csm.get(CHANGELIST).content.decode()
    assert ">Outage</strong>" in cell(listed, "health_now", hook)
    assert 'title="held back: the vendor answers slowly"' in cell(listed, "health_now", hook)
    assert "icon-no" in cell(listed, "endpoint_ok", hook)


def test_a_paused_integration_is_paused_not_an_outage(workspace, source, outage):
    outage.change_state("Paused", paused=True)
    outage.refresh_from_db()
    assert summaries([outage])[outage.pk].state == State.PAUSED


def test_summaries_tell_what_health_tells(workspace, source, outage):
    hook = make_integration(workspace, name="Hook")
    many = summaries([outage, hook])
    for integration in (outage, hook):
        alone = health(integration)
        listed = many[integration.pk]
        measured_apart = ["oldest_waiting_seconds"]  # a few milliseconds apart
        assert {**listed.as_dict(), **dict.fromkeys(measured_apart)} == {
            **alone.as_dict(),
            **dict.fromkeys(measured_apart),
        }
        assert listed.last_attempt_at == alone.last_attempt_at
        assert (listed.oldest_waiting_seconds is None) == (alone.oldest_waiting_seconds is None)


def test_the_api_carries_health(member_client, workspace, outage):
    api = member_client(WorkspaceMembership.Role.VIEWER)
    base = f"/api/v1/workspaces/{workspace.slug}/integrations/"
    detail = api.get(f"{base}{outage.pk}/").json()["health"]
    assert set(detail) == {
        "delivered",
        "failed",
        "pending",
        "retrying",
        "oldest_waiting_seconds",
        "last_error",
        "state",
    }
    assert (detail["delivered"], detail["failed"], detail["pending"], detail["retrying"]) == (
        0,
        0,
        0,
        3,
    )
    assert detail["oldest_waiting_seconds"] >= 0
    assert DNS_ERROR in detail["last_error"]
    assert detail["state"] == "outage"
    listed = api.get(base).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    (row,) = rows
    assert row["health"] | {"oldest_waiting_seconds": 0} == detail | {"oldest_waiting_seconds": 0}
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert set(schema["components"]["schemas"]["Health"]["properties"]) == set(detail)
