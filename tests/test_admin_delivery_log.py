"""The delivery log and the integration's operator actions in the admin."""

import datetime as dt
import json
import re
from urllib.parse import urlencode

import pytest
import responses
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, Integration
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


@pytest.fixture(autouse=True)
def vendor():
    """The vendor accepts an event whose ``outcome`` property says delivered, and refuses
    the others for good (HTTP 400)."""

    def answer(request):
        properties = json.loads(request.body)["properties"]
        if properties["outcome"] == "delivered":
            return (200, {"X-Vendor": "yes"}, '{"ok":true}')
        return (400, {"X-Vendor": "yes"}, '{"error":"refused"}')

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, URL, callback=answer)
        yield mock


def delivered(source, message_id: str, event: str = "Signed Up", status: str = "delivered"):
    """A delivery attempted once, through the engine, that came to ``status``."""
    properties = {"outcome": status, "nested": {"a": 1}}
    send(
        source,
        type="track",
        userId=f"user-{message_id}",
        event=event,
        messageId=message_id,
        properties=properties,
    )
    deliver_due()
    delivery = Delivery.objects.select_related("event").get(event__message_id=message_id)
    assert delivery.status == status
    if status == "delivered":  # a latency the health panel can be checked against
        delivered_at = delivery.event.received_at + dt.timedelta(milliseconds=250)
        Delivery.objects.filter(pk=delivery.pk).update(delivered_at=delivered_at)
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
    assert re.search(r"&quot;nested&quot;: \{\n +&quot;a&quot;: 1", page)
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
    assert "p95 latency 250 ms" in page
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


def test_delivery_page_shows_every_exchange_of_a_multi_step_attempt(
    admin_client_, source, workspace, vendor
):
    api = "https://api.chartmogul.com/v1"
    chartmogul = Integration(workspace=workspace, name="ChartMogul", kind="chartmogul")
    chartmogul.set_settings(
        {"mode": "rest", "api_key": "cm_live_secret", "data_source_uuid": "ds_123"}
    )
    chartmogul.save()
    vendor.get(f"{api}/customers", json={"entries": [], "has_more": False})
    vendor.post(f"{api}/customers", status=201, json={"uuid": "cus_1"})
    send(
        source,
        type="group",
        anonymousId="a1",
        groupId="acme",
        messageId="g1",
        traits={"name": "Acme"},
    )
    deliver_due(chartmogul)
    delivery = Delivery.objects.get(integration=chartmogul)
    page = admin_client_.get(f"{CHANGELIST}{delivery.pk}/change/").content.decode()
    assert "Request 1 of 2" in page and "Request 2 of 2" in page
    assert f"GET {api}/customers?" in page
    assert f"POST {api}/customers" in page
    assert "cus_1" in page  # the write's answer, not only the last request's line
    assert "cm_live_secret" not in page


def test_a_batch_exchange_is_shown_once_with_the_deliveries_it_carried(
    admin_client_, source, workspace, vendor
):
    customerio = make_integration(workspace, kind="customerio", name="CIO")
    vendor.post("https://track.customer.io/api/v2/batch", json={})
    for number in range(12):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"b{number}")
    deliver_due(customerio)
    deliveries = list(Delivery.objects.filter(integration=customerio).order_by("pk"))
    assert len({d.exchange_id for d in deliveries}) == 1
    page = admin_client_.get(f"{CHANGELIST}{deliveries[0].pk}/change/").content.decode()
    assert "This request carried 12 deliveries" in page
    assert f"?exchange={deliveries[0].exchange_id}" in page  # "and 2 more"
    listed = admin_client_.get(CHANGELIST, {"exchange": deliveries[0].exchange_id})
    assert listed.content.decode().count("/change/") >= 12
    exchange_page = admin_client_.get(
        f"/admin/integrations/exchange/{deliveries[0].exchange_id}/change/"
    ).content.decode()
    for delivery in deliveries:
        assert f"/admin/integrations/delivery/{delivery.pk}/change/" in exchange_page
