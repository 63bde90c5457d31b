"""The delivery engine with the vendor faked by ``responses``: outcomes, retries, log."""

import datetime as dt
import json

import pytest
import requests
import responses
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.delivery import schedule
from integrations.delivery.engine import INTERRUPTED
from integrations.delivery.tasks import deliver
from integrations.models import Delivery, DeliveryAttempt, Integration
from tests.test_fanout import make_integration, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(workspace):
    integration = make_integration(workspace)
    integration.set_settings({"url": URL, "headers": {"X-Api-Key": "custom-header-secret"}})
    integration.save()
    return integration


def one_delivery(source, **fields) -> Delivery:
    message = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"}
    send(source, **{**message, **fields})
    return Delivery.objects.get(event__message_id=fields.get("messageId", "m1"))


def run(delivery: Delivery, trigger: str = "scheduled") -> Delivery:
    deliver.call(delivery.integration_id, [delivery.pk], trigger)
    delivery.refresh_from_db()
    return delivery


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


@responses.activate
def test_2xx_delivers_and_logs_the_exchange(source, hook):
    responses.post(URL, status=202, json={"ok": True}, headers={"X-Request-Id": "r1"})
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.attempt_count == 1
    assert delivery.delivered_at is not None
    assert delivery.latency > dt.timedelta(0)
    attempt = delivery.attempts.get()
    assert attempt.number == 1
    assert attempt.trigger == DeliveryAttempt.Trigger.SCHEDULED
    assert attempt.request_method == "POST"
    assert attempt.request_url == URL
    assert json.loads(attempt.request_body)["event"] == "Signed Up"
    assert attempt.response_status == 202
    assert attempt.response_headers["X-Request-Id"] == "r1"
    assert json.loads(attempt.response_body) == {"ok": True}
    assert attempt.duration_ms >= 0


@responses.activate
def test_webhook_is_signed_per_standard_webhooks(source, hook):
    responses.post(URL, status=200)
    run(one_delivery(source))
    sent = responses.calls[0].request
    secret = hook.secret_settings["secret"]
    payload = StandardWebhook(secret).verify(sent.body, dict(sent.headers))
    assert payload["messageId"] == "m1"
    assert sent.headers["webhook-id"] == "m1"
    assert sent.headers["X-Api-Key"] == "custom-header-secret"
    assert sent.headers["User-Agent"].startswith("integration-console/")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
@responses.activate
def test_retryable_statuses_schedule_a_retry(
    source, hook, status, django_capture_on_commit_callbacks
):
    responses.post(URL, status=status, body="busy")
    with django_capture_on_commit_callbacks(execute=True):
        delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.next_attempt_at > timezone.now() - dt.timedelta(seconds=1)
    assert delivery.last_error == f"HTTP {status}: busy"
    assert delivery.last_status_code == status
    (retry_task,) = [
        task
        for task in DBTaskResult.objects.filter(status="READY")
        if task.args_kwargs["args"][1] == [delivery.pk]
        and task.run_after == delivery.next_attempt_at
    ]
    assert retry_task.args_kwargs["args"][2] == "scheduled"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301, 302])
@responses.activate
def test_other_4xx_and_3xx_fail_at_once(source, hook, status):
    responses.post(URL, status=status, headers={"Location": "https://elsewhere.example.com"})
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == 1
    assert str(status) in delivery.last_error
    assert delivery.next_attempt_at is None
    if status in (301, 302):
        assert "redirects are not followed" in delivery.last_error


@responses.activate
def test_410_fails_and_flags_the_integration(source, hook):
    responses.post(URL, status=410)
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.FAILED
    hook.refresh_from_db()
    assert "gone" in hook.flagged_reason
    assert hook.flagged_at is not None
    record = hook.history.first()
    assert record.history_change_reason.startswith("Flagged by the delivery worker")
    assert (record.flagged_reason, record.history_user) == (hook.flagged_reason, None)


@responses.activate
def test_a_later_success_clears_the_410_flag(source, hook):
    responses.post(URL, status=410)
    run(one_delivery(source))
    responses.replace(responses.POST, URL, status=200)
    run(one_delivery(source, messageId="m2"))
    hook.refresh_from_db()
    assert (hook.flagged_reason, hook.flagged_at) == ("", None)
    assert hook.history.first().history_change_reason.startswith("Flag cleared")


@responses.activate
def test_editing_the_integration_clears_the_410_flag(source, hook):
    responses.post(URL, status=410)
    run(one_delivery(source))
    hook.refresh_from_db()
    hook.set_settings({"url": "https://hooks.example.com/v2"})
    hook.save()
    hook.refresh_from_db()
    assert (hook.flagged_reason, hook.flagged_at) == ("", None)


@responses.activate
def test_connection_error_retries(source, hook):
    responses.post(URL, body=requests.ConnectionError("refused"))
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.RETRYING
    assert "connection failed" in delivery.last_error


@responses.activate
def test_retries_until_the_schedule_is_used_up(source, hook, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0
    responses.post(URL, status=500)
    delivery = one_delivery(source)
    for _ in range(schedule.MAX_ATTEMPTS):
        make_due(delivery)
        delivery = run(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == schedule.MAX_ATTEMPTS
    assert delivery.last_error.startswith(f"Gave up after {schedule.MAX_ATTEMPTS} attempts")
    assert list(delivery.attempts.values_list("number", flat=True)) == list(
        range(1, schedule.MAX_ATTEMPTS + 1)
    )


def test_default_schedule_covers_four_hours(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    assert sum(schedule.RETRY_DELAYS) * (1 - schedule.JITTER) > 4 * 3600


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120), ("0", 0), ("999999", 3600), ("soon", None), (None, None)],
)
def test_retry_after_is_parsed_and_clamped(header, expected):
    assert schedule.retry_after_seconds(header) == expected


def test_retry_after_http_date():
    now = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert schedule.retry_after_seconds("Mon, 01 Jan 2024 12:01:00 GMT", now) == 60


@responses.activate
def test_retry_after_is_honoured(source, hook):
    responses.post(URL, status=429, headers={"Retry-After": "300"})
    before = timezone.now()
    delivery = run(one_delivery(source))
    assert delivery.next_attempt_at >= before + dt.timedelta(seconds=300)


@responses.activate
def test_not_due_delivery_is_left_alone(source, hook):
    responses.post(URL, status=500)
    delivery = run(one_delivery(source))
    delivery = run(delivery)
    assert delivery.attempt_count == 1


@responses.activate
def test_manual_retry_of_failed_delivery_is_marked_and_keeps_schedule(source, hook):
    responses.post(URL, status=400)
    responses.post(URL, status=400)
    responses.post(URL, status=200)
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.FAILED
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.FAILED
    assert (delivery.attempt_count, delivery.manual_attempt_count) == (2, 1)
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.DELIVERED
    triggers = list(delivery.attempts.values_list("trigger", flat=True))
    assert triggers == ["scheduled", "manual", "manual"]


@responses.activate
def test_manual_attempt_does_not_move_the_automatic_schedule(source, hook):
    responses.post(URL, status=500)
    delivery = run(one_delivery(source))
    scheduled_at = delivery.next_attempt_at
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.next_attempt_at == scheduled_at
    assert delivery.scheduled_attempt_count == 1


@responses.activate
def test_expired_lease_is_logged_as_interrupted_and_sent_again(source, hook):
    responses.post(URL, status=200)
    delivery = one_delivery(source)
    # A worker claimed it, then died: the lease ran out.
    Delivery.objects.filter(pk=delivery.pk).update(
        leased_until=timezone.now() - dt.timedelta(seconds=1)
    )
    delivery = run(delivery)
    assert delivery.status == Delivery.Status.DELIVERED
    first, second = delivery.attempts.all()
    assert first.error == INTERRUPTED
    assert second.response_status == 200
    assert delivery.attempt_count == 2


@responses.activate
def test_live_lease_is_not_taken(source, hook):
    delivery = one_delivery(source)
    Delivery.objects.filter(pk=delivery.pk).update(
        leased_until=timezone.now() + dt.timedelta(seconds=30)
    )
    delivery = run(delivery)
    assert delivery.attempt_count == 0
    assert len(responses.calls) == 0


@responses.activate
def test_paused_integration_holds_deliveries(source, hook):
    hook.paused = True
    hook.save()
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.PENDING
    assert len(responses.calls) == 0


@responses.activate
def test_disabled_integration_fails_waiting_deliveries_with_a_reason(source, hook):
    delivery = one_delivery(source)
    Integration.objects.filter(pk=hook.pk).update(enabled=False)
    delivery = run(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert "disabled" in delivery.last_error
    assert len(responses.calls) == 0


@responses.activate
def test_secrets_are_redacted_in_the_log(source, workspace):
    integration = make_integration(workspace)
    secret = integration.secret_settings["secret"]
    integration.set_settings(
        {
            "url": f"{URL}?token=query-secret-value&keep=1",
            "headers": {"Authorization": "Bearer header-secret", "X-Trace": "visible"},
        }
    )
    integration.save()
    responses.post(URL, status=500, body=f"echo {secret} header-secret")
    delivery = run(one_delivery(source))
    attempt = delivery.attempts.get()
    stored = json.dumps(
        [
            attempt.request_url,
            attempt.request_headers,
            attempt.request_body,
            attempt.response_body,
            attempt.error,
            delivery.last_error,
        ]
    )
    for value in (secret, "header-secret", "query-secret-value"):
        assert value not in stored
    assert attempt.request_headers["Authorization"] == "[REDACTED]"
    assert attempt.request_headers["X-Trace"] == "visible"
    assert "keep=1" in attempt.request_url


@responses.activate
def test_cookies_a_vendor_sets_are_not_kept(source, hook):
    responses.post(URL, status=200, headers={"Set-Cookie": "sid=abc; Path=/"})
    first = run(one_delivery(source))
    second = run(one_delivery(source, messageId="m2"))
    assert (first.status, second.status) == ("delivered", "delivered")
    assert "Cookie" not in responses.calls[1].request.headers
    assert "sid=abc" not in second.attempts.get().request_headers.get("Cookie", "")


def test_private_addresses_are_refused_without_the_setting(source, hook, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    hook.set_settings({"url": "http://127.0.0.1:9/in"})
    hook.save()
    delivery = run(one_delivery(source))
    assert delivery.status == Delivery.Status.FAILED
    assert "127.0.0.1" in delivery.last_error
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in delivery.last_error


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
    ],
)
def test_address_classification(address, public):
    from integrations.delivery.http import is_public

    assert is_public(address) is public


@responses.activate
def test_customerio_207_fails_only_the_rejected_operation(source, workspace):
    integration = make_integration(workspace, kind="customerio")
    for number in (1, 2):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    responses.post(
        "https://track.customer.io/api/v2/batch",
        status=207,
        json={"errors": [{"batch_index": 0, "reason": "invalid", "message": "bad name"}]},
    )
    deliver.call(integration.pk, ids, "scheduled")
    first, second = Delivery.objects.order_by("pk")
    assert first.status == Delivery.Status.FAILED
    assert "bad name" in first.last_error
    assert second.status == Delivery.Status.DELIVERED
    assert len(responses.calls) == 1


def test_rate_limited_vendor_gets_spaced_slots(workspace, monkeypatch):
    from integrations.delivery import throttle

    integration = make_integration(workspace)
    frozen = timezone.now()
    sleeps: list[float] = []
    monkeypatch.setattr(throttle.timezone, "now", lambda: frozen)
    monkeypatch.setattr(throttle.time, "sleep", sleeps.append)
    for _ in range(3):
        throttle.wait_for_slot(integration.pk, per_second=10)
    integration.refresh_from_db()
    # Three slots 100 ms apart: the first at once, the others waited for.
    assert sleeps == pytest.approx([0.1, 0.2])
    assert integration.next_request_at == frozen + dt.timedelta(seconds=0.3)


@responses.activate
def test_429_defers_the_rest_of_the_run(source, hook):
    responses.post(URL, status=429, headers={"Retry-After": "60"})
    for number in range(3):
        send(source, type="track", userId="u", event="E", messageId=f"r{number}")
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    deliver.call(hook.pk, ids, "scheduled")
    assert len(responses.calls) == 1
    first, *rest = Delivery.objects.order_by("pk")
    assert first.attempt_count == 1
    for delivery in rest:
        assert delivery.attempt_count == 0
        assert delivery.next_attempt_at >= first.next_attempt_at
        assert "rate limited" in delivery.last_error


@responses.activate
def test_an_exception_in_follow_up_retries_visibly(source, workspace, monkeypatch):
    from integrations.destinations.webhook import Webhook

    integration = make_integration(workspace)
    responses.post(URL, status=200)

    def broken(*args):
        raise ValueError("bad answer")

    monkeypatch.setattr(Webhook, "follow_up", classmethod(broken))
    delivery = one_delivery(source)
    deliver.call(integration.pk, [delivery.pk], "scheduled")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRYING
    assert "internal error building the next request" in delivery.last_error


@responses.activate
def test_an_unanswered_vendor_defers_later_runs_on_every_worker(source, hook):
    responses.post(URL, body=requests.ConnectTimeout("no answer"))
    first = one_delivery(source)
    deliver.call(hook.pk, [first.pk], "scheduled")
    hook.refresh_from_db()
    assert hook.is_deferred()
    # Another run (any worker) for a fresh delivery sends nothing and waits as long.
    second = one_delivery(source, messageId="m2")
    deliver.call(hook.pk, [second.pk], "scheduled")
    second.refresh_from_db()
    assert len(responses.calls) == 1
    assert second.attempt_count == 0
    assert second.next_attempt_at == hook.deferred_until
    assert second.last_error.startswith("Deferred")
    # Editing the integration (a fixed URL, say) ends the deferral.
    hook.save()
    assert not Integration.objects.get(pk=hook.pk).is_deferred()
