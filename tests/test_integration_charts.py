"""An integration's charts page: volume, error rate and p95 latency per hour or per day,
drawn with the dashboard's chart helper, and a table of the same numbers."""

import datetime as dt
import json

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from integrations.delivery.timeline import Span, timeline
from integrations.models import Delivery, Workspace
from tests.admin_clients import Role, member
from tests.test_dashboard import table
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


@pytest.fixture
def traffic(source, hook):
    """20 delivered (latencies 10, 20 ... 200 ms), 3 failed (HTTP 400), 2 retrying (503)."""

    def answer(request):
        outcome = json.loads(request.body)["properties"]["outcome"]
        return {"delivered": (200, {}, "ok"), "failed": (400, {}, "no"), "retry": (503, {}, "")}[
            outcome
        ]

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, URL, callback=answer)
        outcomes = ["delivered"] * 20 + ["failed"] * 3 + ["retry"] * 2
        for number, outcome in enumerate(outcomes):
            send(
                source,
                type="track",
                userId=f"u{number}",
                event="E",
                messageId=f"m{number}",
                properties={"outcome": outcome},
            )
        deliver_due(hook)
    delivered = Delivery.objects.filter(status=Delivery.Status.DELIVERED).select_related("event")
    for delivery in delivered:
        latency = dt.timedelta(milliseconds=10 * (int(delivery.event.message_id[1:]) + 1))
        Delivery.objects.filter(pk=delivery.pk).update(
            delivered_at=delivery.event.received_at + latency
        )
    assert delivered.count() == 20
    return hook


def test_the_last_24_hours_per_hour(traffic):
    slots = timeline(traffic, Span.DAY)
    assert len(slots) == 24
    now = slots[-1]
    assert (now.delivered, now.failed, now.retrying, now.volume) == (20, 3, 2, 25)
    assert now.error_rate == pytest.approx(20.0)
    assert now.p95_latency == dt.timedelta(milliseconds=190)  # nearest rank: the 19th of 20
    assert all(slot.volume == 0 and slot.p95_latency is None for slot in slots[:-1])


def test_the_last_7_days_per_day_leave_older_and_test_deliveries_out(traffic, source):
    Delivery.objects.filter(event__message_id="m0").update(
        created_at=timezone.now() - dt.timedelta(days=8)
    )
    Delivery.objects.filter(event__message_id="m1").update(origin=Delivery.Origin.TEST)
    slots = timeline(traffic, Span.WEEK)
    assert len(slots) == 7
    assert slots[-1].delivered == 18
    assert sum(slot.volume for slot in slots) == 23


def test_the_page_draws_the_charts_and_the_table(csm, traffic):
    url = reverse("admin:integrations_integration_charts", args=[traffic.pk])
    text = csm.get(url).content.decode()
    for chart_id in ("volume", "error-rate", "latency"):
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in text
    assert text.count('class="bar-latency"') == 24
    rows = table(text, "timeline-table")
    assert len(rows) == 24
    assert rows[-1][1:] == ["25", "20", "3", "2", "20.0 %", "190 ms"]
    assert rows[0][1:] == ["0", "0", "0", "0", "-", "-"]
    week = table(csm.get(url, {"span": "7d"}).content.decode(), "timeline-table")
    assert len(week) == 7 and week[-1][1] == "25"
    # Linked from the integration page's health panel.
    page = csm.get(reverse("admin:integrations_integration_change", args=[traffic.pk]))
    assert url in page.content.decode()


def test_viewers_see_the_charts_and_other_workspaces_do_not(
    django_user_model, workspace, viewer, traffic
):
    url = reverse("admin:integrations_integration_charts", args=[traffic.pk])
    assert viewer.get(url).status_code == 200
    other = Workspace.objects.create(name="Other", slug="other")
    outsider = member(django_user_model, other, Role.CSM, "outsider")
    assert outsider.get(url).status_code == 404
