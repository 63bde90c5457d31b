"""The delivery log and the integration's operator actions in the admin."""

import datetime as dt
import re
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, DeliveryAttempt, Integration
from tests.test_fanout import make_integration, send


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


def delivered(source, message_id: str, event: str = "Signed Up", status: str = "delivered"):
    send(source, type="track", userId=f"user-{message_id}", event=event, messageId=message_id)
    delivery = Delivery.objects.get(event__message_id=message_id)
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status,
        attempt_count=1,
        last_status_code=200 if status == "delivered" else 500,
        delivered_at=now + dt.timedelta(milliseconds=250) if status == "delivered" else None,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        request_method="POST",
        request_url="https://hooks.example.com/in",
        request_headers={"Content-Type": "application/json"},
        request_body='{"event":"Signed Up","nested":{"a":1}}',
        response_status=200 if status == "delivered" else 500,
        response_headers={"X-Vendor": "yes"},
        response_body='{"ok":true}',
        duration_ms=12.5,
    )
    delivery.refresh_from_db()
    return delivery


CHANGELIST = "/admin/integrations/delivery/"


def test_delivery_log_lists_columns(admin_client_, source, hook):
    delivered(source, "m1")
    page = admin_client_.get(CHANGELIST).content.decode()
    for text in ("Acme", "Hook", "Signed Up", "user-m1", "Delivered", "200", "End-to-end latency"):
        assert text in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status__exact=failed", "user-bad", "user-good"),
        ("event_name=Churned", "user-bad", "user-good"),
        ("last_status_code__exact=200", "user-good", "user-bad"),
        ("q=bad", "user-bad", "user-good"),
        ("q=user-good", "user-good", "user-bad"),
    ],
)
def test_delivery_log_filters_and_search(admin_client_, source, hook, query, shown, hidden):
    delivered(source, "good")
    delivered(source, "bad", event="Churned", status="failed")
    page = admin_client_.get(f"{CHANGELIST}?{query}").content.decode()
    assert shown in page
    assert hidden not in page


def test_delivery_log_filters_by_integration_and_date(admin_client_, source, workspace, hook):
    delivered(source, "m1")
    other = make_integration(workspace, name="Other hook")
    # What the date filter's "Today" link sends: the start of today, with its offset.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since = urlencode({"created_at__gte": str(today)})
    url = f"{CHANGELIST}?integration__id__exact={other.pk}&{since}"
    assert "user-m1" not in admin_client_.get(url).content.decode()
    url = f"{CHANGELIST}?integration__id__exact={hook.pk}&{since}"
    assert "user-m1" in admin_client_.get(url).content.decode()


def test_delivery_detail_shows_event_request_and_response_side_by_side(admin_client_, source, hook):
    delivery = delivered(source, "m1")
    page = admin_client_.get(f"{CHANGELIST}{delivery.pk}/change/").content.decode()
    assert "Event received" in page
    assert "Request sent" in page
    assert "Response" in page
    # Pretty-printed JSON of the request body.
    assert "&quot;nested&quot;: {\n    &quot;a&quot;: 1" in page
    assert "X-Vendor: yes" in page


def test_retry_button_and_action_queue_manual_attempts(
    admin_client_, source, hook, django_capture_on_commit_callbacks
):
    failed = delivered(source, "m1", status="failed")
    other = delivered(source, "m2", status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(f"{CHANGELIST}{failed.pk}/retry/")
        assert response.status_code == 302
        admin_client_.post(CHANGELIST, {"action": "retry_selected", "_selected_action": [other.pk]})
    queued = sorted(
        t.args_kwargs["args"][1][0]
        for t in DBTaskResult.objects.all()
        if t.args_kwargs["args"][2] == "manual"
    )
    assert queued == sorted([failed.pk, other.pk])


def test_retry_of_delivered_is_refused_with_a_message(admin_client_, source, hook):
    done = delivered(source, "m1")
    response = admin_client_.post(
        CHANGELIST, {"action": "retry_selected", "_selected_action": [done.pk]}, follow=True
    )
    assert "replay its event" in response.content.decode()


def test_integration_page_shows_health_and_actions(admin_client_, source, hook):
    delivered(source, "m1")
    delivered(source, "m2")
    delivered(source, "m3", status="failed")
    page = admin_client_.get(f"/admin/integrations/integration/{hook.pk}/change/").content
    page = page.decode()
    assert "2 delivered" in page
    assert "1 failed" in page
    assert "success rate 66.7%" in page
    # Received at ingest, delivered 250 ms after the test's clock read: a bit over 250 ms.
    assert re.search(r"p95 latency 2[5-9]\d ms", page)
    for label in ("Delivery log", "Retry failed", "Replay", "Pause"):
        assert label in page


def test_pause_and_resume_from_the_admin(admin_client_, hook):
    url = f"/admin/integrations/integration/{hook.pk}/pause/"
    admin_client_.post(url, {"reason": "vendor maintenance"})
    assert Integration.objects.get(pk=hook.pk).paused
    page = admin_client_.get(f"/admin/integrations/integration/{hook.pk}/change/").content
    assert b"Resume" in page
    admin_client_.post(f"/admin/integrations/integration/{hook.pk}/resume/")
    assert not Integration.objects.get(pk=hook.pk).paused


def test_recover_and_replay_pages(admin_client_, source, hook):
    delivered(source, "m1", status="failed")
    url = f"/admin/integrations/integration/{hook.pk}/recover/"
    assert b"since" in admin_client_.get(url).content
    since = (timezone.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    until = (timezone.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    response = admin_client_.post(
        url, {"since": since, "until": until, "confirm": "yes"}, follow=True
    )
    assert "1 failed deliveries queued" in response.content.decode()
    response = admin_client_.post(
        f"/admin/integrations/integration/{hook.pk}/replay/",
        {"since": until, "until": since},
    )
    assert b"must be later" in response.content
    response = admin_client_.post(
        f"/admin/integrations/integration/{hook.pk}/replay/",
        {"since": since, "until": until, "confirm": "yes"},
        follow=True,
    )
    assert "Replay of 1 events started" in response.content.decode()
    assert DBTaskResult.objects.filter(task_path__endswith="replay_events").count() == 1


@pytest.mark.parametrize("query", ["USER-GOOD", "user-goo", "GOOD"])
def test_delivery_log_search_is_exact(admin_client_, source, hook, query):
    """Exact, case-sensitive matches only: what the events table's indexes answer."""
    delivered(source, "good")
    page = admin_client_.get(CHANGELIST, {"q": query}).content.decode()
    assert "user-good" not in page
    assert "Exact message id or user id" in page
