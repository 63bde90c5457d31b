"""The delivery log's lists on a laptop: compact columns with the whole text on hover, an
error column, a custom from/to time filter; the delivery page's attempt headings count
the attempts (never the delivery's id)."""

import datetime as dt
import re

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from integrations.models import Delivery, Event, SeenEvent, Workspace
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"
DELIVERIES = reverse("admin:integrations_delivery_changelist")
EVENTS = reverse("admin:integrations_event_changelist")
LONG_NAME = "Subscription Renewed After A Very Long Trial Period With Many Words In It"
LONG_ERROR = "HTTP 422: " + "the vendor explains at length why it refused this event; " * 10


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


def failed(source, hook, message_id: str = "m1") -> Delivery:
    with responses.RequestsMock() as mock:
        mock.post(URL, status=422, body=LONG_ERROR.removeprefix("HTTP 422: "))
        send(source, type="track", userId="u-1", event=LONG_NAME, messageId=message_id)
        deliver_due(hook)
    return Delivery.objects.get(event__message_id=message_id)


def headers(text: str) -> list[str]:
    head = text[text.index('<table id="result_list">') :]
    head = head[: head.index("</thead>")]
    cells = re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def test_the_delivery_list_has_short_columns_and_an_error_column(csm, admin_client, source, hook):
    delivery = failed(source, hook)
    text = csm.get(DELIVERIES).content.decode()
    assert headers(text)[1:] == [
        "Made",
        "Integration",
        "Event",
        "User",
        "Status",
        "Attempts",
        "Code",
        "End-to-end latency",
        "Error",
    ]
    error = re.search(r'<td class="field-error"><span class="clip" title="([^"]*)"', text)
    assert error.group(1).startswith("HTTP 422: the vendor explains")
    assert delivery.last_error.startswith("HTTP 422")
    assert f'title="{LONG_NAME}"' in text
    assert "table-layout: fixed" in text
    # Whoever sees several workspaces gets the workspace column.
    assert "Workspace" in headers(admin_client.get(DELIVERIES).content.decode())


def test_the_event_list_has_short_columns(csm, source, hook):
    failed(source, hook)
    assert headers(csm.get(EVENTS).content.decode())[1:] == [
        "Received",
        "Source",
        "Type",
        "Event",
        "User",
        "Message id",
    ]


def test_the_attempt_headings_count_the_attempts(admin_client, source, hook):
    for number in range(4):  # this delivery's id is not its number of attempts
        failed(source, hook, f"earlier-{number}")
    with responses.RequestsMock() as mock:
        mock.post(URL, status=503)
        mock.post(URL, status=503)
        mock.post(URL, status=200)
        send(source, type="track", userId="u-2", event="Retried", messageId="retried")
        for _ in range(3):
            Delivery.objects.filter(status=Delivery.Status.RETRYING).update(
                next_attempt_at=timezone.now()
            )
            deliver_due(hook)
    delivery = Delivery.objects.get(event__message_id="retried")
    assert delivery.status == Delivery.Status.DELIVERED and delivery.attempt_count == 3
    assert delivery.pk != 3
    text = admin_client.get(reverse("admin:integrations_delivery_change", args=[delivery.pk]))
    headings = re.findall(r"<h3>(Attempt \d+ of \d+)", text.content.decode())
    assert headings == ["Attempt 3 of 3", "Attempt 2 of 3", "Attempt 1 of 3"]
    assert [str(a) for a in delivery.attempts.order_by("number")] == [
        f"delivery #{delivery.pk}, attempt 1",
        f"delivery #{delivery.pk}, attempt 2",
    ]


def range_query(field: str, since: dt.datetime, until: dt.datetime) -> dict[str, str]:
    return {
        f"{field}__range__gte_0": f"{since:%Y-%m-%d}",
        f"{field}__range__gte_1": f"{since:%H:%M:%S}",
        f"{field}__range__lte_0": f"{until:%Y-%m-%d}",
        f"{field}__range__lte_1": f"{until:%H:%M:%S}",
    }


def test_a_custom_time_range_filters_both_lists(csm, source, hook):
    old, new = failed(source, hook, "old"), failed(source, hook, "new")
    then = timezone.now().replace(microsecond=0) - dt.timedelta(days=3, hours=5)
    Delivery.objects.filter(pk=old.pk).update(created_at=then)
    Event.objects.filter(pk=old.event_id).update(received_at=then)
    window = range_query("created_at", then - dt.timedelta(hours=1), then + dt.timedelta(hours=1))
    text = csm.get(DELIVERIES, window).content.decode()
    assert f"/delivery/{old.pk}/change/" in text and f"/delivery/{new.pk}/change/" not in text
    window = range_query("received_at", then - dt.timedelta(hours=1), then + dt.timedelta(hours=1))
    text = csm.get(EVENTS, window).content.decode()
    titles = re.findall(r'title="([^"]*)"', text)
    assert "old" in titles and "new" not in titles
    assert 'name="created_at__range__gte_0"' in csm.get(DELIVERIES).content.decode()


def test_the_event_name_filter_offers_the_catalogs_names(csm, source, hook, workspace):
    """From the names seen in the user's workspaces, not from a scan of the deliveries."""
    other = Workspace.objects.create(name="Other", slug="other")
    SeenEvent.objects.create(workspace=workspace, name="Signed Up", count=3)
    SeenEvent.objects.create(workspace=other, name="Their Secret Event", count=9)
    text = csm.get(DELIVERIES).content.decode()
    assert "?event_name=Signed+Up" in text and "Their Secret Event" not in text
    failed(source, hook, "named")
    listed = csm.get(DELIVERIES, {"event_name": LONG_NAME}).content.decode()
    assert "/change/" in listed and LONG_NAME in listed
    assert "/change/" not in csm.get(DELIVERIES, {"event_name": "Signed Up"}).content.decode()
