"""Alerts: conditions, one notice per incident opened and cleared, channels, retries, and
the worker's periodic check."""

import datetime as dt
import json
import threading

import pytest
import responses
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from integrations.alerts import conditions, incidents, notify, periodic, receivers
from integrations.delivery.health import Health
from integrations.delivery.worker import DatabaseOutage, Periodic
from integrations.ingest import accept
from integrations.management.commands import db_worker
from integrations.models import AlertIncident, AlertRule
from integrations.sources.segment_spec import normalize
from tests.e2e.fake_vendor import FakeVendor, Reply
from tests.test_fanout import make_integration
from tests.traffic import deliver_due

URL = "https://hooks.example.com/in"
Condition = AlertRule.Condition


@pytest.fixture(autouse=True)
def alert_settings(settings):
    settings.PUBLIC_BASE_URL = "https://console.example.com"
    settings.ALERTS_MIN_DELIVERIES = 2
    settings.ALERTS_WINDOW_MINUTES = 15
    return settings


@pytest.fixture
def hook(workspace):
    return make_integration(workspace, name="Hook")


def rule(workspace, condition, threshold=None, channel="email", target="csm@example.com"):
    return AlertRule.objects.create(
        workspace=workspace,
        name=f"{condition} rule",
        channel=channel,
        target=target,
        condition=condition,
        threshold=threshold,
    )


def track(source, message_id, received_at=None):
    message = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": message_id}
    accept(source, [normalize(message, received_at=received_at or timezone.now())])


def deliver_and_signal(capture, integration=None):
    """Run the due deliveries and the worker's on-commit signal, as a worker would."""
    with capture(execute=True):
        deliver_due(integration)


# --- failure_rate --------------------------------------------------------------------


@responses.activate
def test_failure_rate_opens_once_and_clears_with_links_to_the_delivery_log(source, hook):
    alert = rule(hook.workspace, Condition.FAILURE_RATE, threshold=50)
    responses.post(URL, status=400, body="bad payload")
    for i in range(2):
        track(source, f"m{i}")
    deliver_due(hook)

    result = periodic.check()
    assert (result.opened, result.notified) == (1, 1)
    (email,) = mail.outbox
    assert email.to == ["csm@example.com"]
    assert "[Acme] Alert: failure_rate rule (Hook" in email.subject
    assert "Workspace: Acme" in email.body
    assert "Integration: Hook (webhook)" in email.body
    assert "100.0 % of the deliveries finished in the last 15 minutes failed" in email.body
    assert "bad payload" in email.body
    assert (
        "https://console.example.com/admin/integrations/delivery/"
        f"?integration__id__exact={hook.pk}&status__exact=failed" in email.body
    )

    # Still failing: the incident stays open and nobody is told again.
    assert periodic.check().opened == 0
    assert len(mail.outbox) == 1

    responses.replace(responses.POST, URL, status=200)
    for i in range(2, 5):
        track(source, f"m{i}")
    deliver_due(hook)
    result = periodic.check()
    assert (result.cleared, result.notified) == (1, 1)
    cleared = mail.outbox[1]
    assert cleared.subject.startswith("[Acme] Cleared: failure_rate rule")
    assert "40.0 % of the deliveries finished" in cleared.body
    incident = AlertIncident.objects.get(rule=alert)
    assert incident.cleared_at is not None and incident.last_notified_at >= incident.cleared_at


@responses.activate
def test_failure_rate_needs_a_minimum_sample(source, hook, alert_settings):
    alert_settings.ALERTS_MIN_DELIVERIES = 3
    rule(hook.workspace, Condition.FAILURE_RATE, threshold=10)
    responses.post(URL, status=400)
    for i in range(2):
        track(source, f"m{i}")
    deliver_due(hook)
    assert periodic.check().opened == 0
    assert not AlertIncident.objects.exists()


@pytest.mark.parametrize("condition", [Condition.FAILURE_RATE, Condition.BACKLOG_AGE])
def test_a_rule_saved_without_its_threshold_never_holds(hook, condition):
    # Validation requires the threshold; a row written around it must not stop the check.
    saved = rule(hook.workspace, condition, threshold=None)
    state = Health(
        delivered=0,
        failed=50,
        pending=5,
        retrying=0,
        oldest_waiting_seconds=3600.0,
        last_error="HTTP 500",
        last_attempt_at=timezone.now(),
        p95_latency=None,
    )
    judge = (
        conditions.failure_rate if condition == Condition.FAILURE_RATE else conditions.backlog_age
    )
    assert judge(saved, state) == (False, conditions.NO_THRESHOLD)


# --- backlog_age ---------------------------------------------------------------------


@responses.activate
def test_backlog_age_fires_on_old_waiting_events_and_clears_when_they_go(source, hook):
    rule(hook.workspace, Condition.BACKLOG_AGE, threshold=30)
    track(source, "old", received_at=timezone.now() - dt.timedelta(minutes=40))
    assert periodic.check().opened == 1
    assert "The oldest waiting event was received 40 min ago" in mail.outbox[0].body
    assert "status__exact=retrying" in mail.outbox[0].body

    responses.post(URL, status=200)
    deliver_due(hook)
    assert periodic.check().cleared == 1
    assert "Nothing is waiting." in mail.outbox[1].body


def test_a_young_backlog_is_not_an_incident(source, hook):
    rule(hook.workspace, Condition.BACKLOG_AGE, threshold=30)
    track(source, "new", received_at=timezone.now() - dt.timedelta(minutes=5))
    assert periodic.check().opened == 0


def test_pausing_the_integration_clears_its_backlog_incident(source, hook):
    rule(hook.workspace, Condition.BACKLOG_AGE, threshold=30)
    track(source, "old", received_at=timezone.now() - dt.timedelta(minutes=40))
    periodic.check()
    hook.change_state("test", paused=True)
    assert periodic.check().cleared == 1
    assert "paused or disabled" in AlertIncident.objects.get().clear_detail


# --- stalled_worker ------------------------------------------------------------------


@responses.activate
def test_stalled_worker_fires_when_due_work_waits_unattempted(source, hook):
    alert = rule(hook.workspace, Condition.STALLED_WORKER)
    track(source, "m1")
    now = timezone.now()
    assert periodic.check(now + dt.timedelta(minutes=4)).opened == 0  # default: 5 minutes
    assert periodic.check(now + dt.timedelta(minutes=6)).opened == 1
    incident = AlertIncident.objects.get(rule=alert)
    assert incident.integration is None
    assert "no attempt was recorded at all" in incident.detail
    assert "status__exact=retrying" in mail.outbox[0].body
    assert "Integration: all" in mail.outbox[0].body

    responses.post(URL, status=200)
    deliver_due(hook)
    assert periodic.check(now + dt.timedelta(minutes=7)).cleared == 1
    assert "No delivery is due." in mail.outbox[1].body


@responses.activate
def test_a_delivery_waiting_for_a_later_retry_is_not_stalled_work(source, hook, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1000  # the first retry comes after 5,000 s
    rule(hook.workspace, Condition.STALLED_WORKER, threshold=5)
    responses.post(URL, status=503)
    track(source, "m1")
    deliver_due(hook)
    # Ten minutes on, the delivery still waits (health counts it) but is not due.
    assert periodic.check(timezone.now() + dt.timedelta(minutes=10)).opened == 0


def _health(last_attempt_at):
    return Health(
        delivered=0,
        failed=0,
        pending=1,
        retrying=0,
        oldest_waiting_seconds=600,
        last_error="",
        last_attempt_at=last_attempt_at,
        p95_latency=None,
    )


def test_stalled_worker_is_quiet_while_attempts_are_recorded(source, hook):
    alert = AlertRule(workspace=hook.workspace, condition=Condition.STALLED_WORKER, threshold=5)
    track(source, "m1")
    now = timezone.now() + dt.timedelta(minutes=10)
    busy = {hook: _health(now - dt.timedelta(minutes=1))}
    idle = {hook: _health(now - dt.timedelta(minutes=6))}
    assert conditions.stalled_worker(alert, busy, now) == (
        False,
        "The worker is recording attempts.",
    )
    holds, detail = conditions.stalled_worker(alert, idle, now)
    assert holds and "no attempt was recorded since" in detail


# --- auth_error ----------------------------------------------------------------------


@responses.activate
def test_auth_error_fires_at_once_and_clears_on_the_next_success(
    source, hook, django_capture_on_commit_callbacks
):
    alert = rule(hook.workspace, Condition.AUTH_ERROR)
    responses.post(URL, status=401, body="invalid api key")
    track(source, "m1")
    deliver_and_signal(django_capture_on_commit_callbacks)
    (email,) = mail.outbox
    assert "[Acme] Alert: auth_error rule (Hook" in email.subject
    assert "answered HTTP 401" in email.body and "invalid api key" in email.body
    assert f"integration__id__exact={hook.pk}&status__exact=failed" in email.body

    track(source, "m2")
    deliver_and_signal(django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1  # once per incident
    assert AlertIncident.objects.filter(rule=alert).count() == 1

    responses.replace(responses.POST, URL, status=200)
    track(source, "m3")
    deliver_and_signal(django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject.startswith("[Acme] Cleared: auth_error rule")
    assert "accepted a request again (HTTP 200)" in mail.outbox[1].body
    assert not AlertIncident.objects.open().exists()


@pytest.mark.parametrize("status", [403, 410])
def test_403_and_410_are_auth_errors_and_other_failures_are_not(hook, status):
    rule(hook.workspace, Condition.AUTH_ERROR)
    receivers.judge_answers(hook, [(500, "HTTP 500"), (None, "timed out")])
    assert not AlertIncident.objects.exists()
    receivers.judge_answers(hook, [(200, ""), (status, f"HTTP {status}")])
    assert AlertIncident.objects.open().count() == 1


def test_the_check_clears_an_auth_error_no_longer_seen(hook):
    rule(hook.workspace, Condition.AUTH_ERROR)
    receivers.judge_answers(hook, [(401, "HTTP 401")])
    assert periodic.check().cleared == 0
    result = periodic.check(timezone.now() + dt.timedelta(minutes=16))
    assert result.cleared == 1
    assert "No request was refused in the last 15 minutes." in mail.outbox[-1].body


def test_the_receiver_never_raises(hook, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(receivers, "judge_answers", broken)
    receivers.on_exchanges_recorded(None, integration=hook, answers=[(401, "")])
    assert "auth_error alerts for integration" in caplog.text


# --- once per incident ---------------------------------------------------------------


def test_one_open_incident_per_rule_and_integration(hook):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    now = timezone.now()
    assert incidents.fire(alert, hook, "first", now) is not None
    assert incidents.fire(alert, hook, "second", now) is None
    fields = {"rule": alert, "opened_at": now, "last_seen_at": now, "detail": "x"}
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertIncident.objects.create(integration=hook, **fields)
    stalled = rule(hook.workspace, Condition.STALLED_WORKER)
    fields["rule"] = stalled
    AlertIncident.objects.create(integration=None, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertIncident.objects.create(integration=None, **fields)


def test_an_incident_is_cleared_once(hook):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    incident = incidents.fire(alert, hook, "seen", timezone.now())
    stale_copy = AlertIncident.objects.get(pk=incident.pk)
    assert incidents.clear(incident, "gone", timezone.now())
    assert not incidents.clear(stale_copy, "gone", timezone.now())


def test_a_notice_claimed_by_another_process_is_not_sent_twice(hook):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    incident = incidents.fire(alert, hook, "seen", timezone.now())
    AlertIncident.objects.filter(pk=incident.pk).update(notifying_since=timezone.now())
    assert notify.deliver(incident) is False
    assert not mail.outbox
    # Its sender died: after the lease, the notice goes.
    AlertIncident.objects.filter(pk=incident.pk).update(
        notifying_since=timezone.now() - notify.NOTICE_LEASE - dt.timedelta(seconds=1)
    )
    assert notify.deliver(incident) is True
    assert len(mail.outbox) == 1


def test_news_during_a_send_is_still_pending_afterwards(hook, monkeypatch):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    incident = incidents.fire(alert, hook, "seen", timezone.now())
    real_send = notify.channels.send

    def send_while_it_clears(rule, notice):
        incidents.clear(AlertIncident.objects.get(pk=incident.pk), "gone", timezone.now())
        real_send(rule, notice)

    monkeypatch.setattr(notify.channels, "send", send_while_it_clears)
    assert notify.deliver(incident)
    assert [incident.pk] == [i.pk for i in notify.pending(timezone.now())]
    monkeypatch.setattr(notify.channels, "send", real_send)
    assert notify.deliver(incident)
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[Acme] Alert", "[Acme] Cleared"]


# --- channels ------------------------------------------------------------------------


@pytest.fixture
def slack():
    with FakeVendor() as fake:
        yield fake


def test_slack_gets_a_text_message_and_the_url_stays_secret(hook, slack):
    url = slack.url("/services/T000/B000/very-secret-token")
    rule(hook.workspace, Condition.AUTH_ERROR, channel="slack", target=url)
    receivers.judge_answers(hook, [(401, "HTTP 401: <b>bad key</b> & more")])
    (sent,) = slack.requests_to("/services/T000/B000/very-secret-token")
    assert sent.headers["Content-Type"] == "application/json"
    text = sent.json()["text"]
    assert "Alert “auth_error rule” opened in Acme." in text
    assert "&lt;b&gt;bad key&lt;/b&gt; &amp; more" in text  # Slack's escaping
    assert f"integration__id__exact={hook.pk}" in text and "|Open the delivery log>" in text
    assert AlertIncident.objects.get().last_notified_at is not None


def test_a_webhook_gets_the_documented_json(hook, slack):
    alert = rule(hook.workspace, Condition.AUTH_ERROR, channel="webhook", target=slack.url("/a"))
    receivers.judge_answers(hook, [(410, "HTTP 410: gone")])
    body = slack.requests_to("/a")[0].json()
    assert body["type"] == "alert.opened"
    assert body["rule"] == {
        "id": alert.pk,
        "name": "auth_error rule",
        "condition": "auth_error",
        "threshold": None,
    }
    assert body["workspace"] == {"slug": "acme", "name": "Acme"}
    assert body["integration"] == {"id": hook.pk, "name": "Hook", "kind": "webhook"}
    assert body["incident"]["cleared_at"] is None and "HTTP 410" in body["incident"]["detail"]
    assert body["delivery_log_url"].startswith("https://console.example.com/admin/")
    receivers.judge_answers(hook, [(200, "")])
    assert slack.requests_to("/a")[1].json()["type"] == "alert.cleared"


def test_a_failed_notice_is_logged_kept_and_sent_on_the_next_check(hook, slack, caplog):
    path = "/services/T/B/secret-part"
    slack.script(path, Reply(500))
    rule(hook.workspace, Condition.AUTH_ERROR, channel="slack", target=slack.url(path))
    receivers.judge_answers(hook, [(401, "HTTP 401")])
    incident = AlertIncident.objects.get()
    assert incident.last_notified_at is None
    assert incident.notify_error == "127.0.0.1 answered HTTP 500"
    assert "was not sent: 127.0.0.1 answered HTTP 500" in caplog.text
    assert "secret-part" not in caplog.text
    assert periodic.check().notified == 1
    assert len(slack.requests_to(path)) == 2
    incident.refresh_from_db()
    assert incident.last_notified_at is not None and incident.notify_error == ""


def test_an_unreachable_channel_is_described_without_the_url(hook, slack):
    url = slack.url("/hook-secret")
    slack.stop()
    rule(hook.workspace, Condition.AUTH_ERROR, channel="webhook", target=url)
    receivers.judge_answers(hook, [(401, "HTTP 401")])
    error = AlertIncident.objects.get().notify_error
    assert error == "could not connect to 127.0.0.1"


def test_a_private_address_is_refused_by_the_ssrf_guard(hook, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    AlertRule.objects.create(
        workspace=hook.workspace,
        name="metadata",
        channel="webhook",
        target="https://169.254.169.254/latest",
        condition=Condition.AUTH_ERROR,
    )
    receivers.judge_answers(hook, [(401, "HTTP 401")])
    assert "refused: 169.254.169.254 resolves to" in AlertIncident.objects.get().notify_error


def test_notices_are_not_retried_after_a_day(hook):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    long_ago = timezone.now() - dt.timedelta(days=2)
    AlertIncident.objects.create(
        rule=alert, integration=hook, opened_at=long_ago, last_seen_at=long_ago, detail="x"
    )
    assert notify.pending(timezone.now()) == []


def test_old_cleared_incidents_are_forgotten(hook):
    alert = rule(hook.workspace, Condition.BACKLOG_AGE, threshold=1)
    old = timezone.now() - periodic.INCIDENT_RETENTION - dt.timedelta(days=1)
    AlertIncident.objects.create(
        rule=alert, integration=hook, opened_at=old, last_seen_at=old, cleared_at=old, detail="x"
    )
    periodic.check()
    assert not AlertIncident.objects.exists()


# --- the worker's check --------------------------------------------------------------


def test_the_check_loop_survives_errors(monkeypatch, caplog, db):
    calls = []
    job: Periodic

    def flaky_check():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug in a condition")
        job.stop.set()

    job = Periodic("alert check", interval=0, outage=DatabaseOutage(), job=flaky_check)
    job.start()
    job.join(timeout=10)
    assert len(calls) == 2
    assert "alert check failed; trying again" in caplog.text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
def test_one_worker_checks_at_a_time_on_postgresql(db):
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [periodic.ADVISORY_LOCK_ID])
        assert periodic.check() is None
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [periodic.ADVISORY_LOCK_ID])
        assert periodic.check() is not None
    finally:
        other.close()


def test_the_worker_starts_the_check_thread(monkeypatch, settings):
    started = threading.Event()
    monkeypatch.setattr(Periodic, "run", lambda self: started.set())
    settings.ALERTS_INTERVAL_SECONDS = 7
    jobs = db_worker.Command.start_jobs(False, DatabaseOutage())
    (check,) = [job for job in jobs if job.name == "alert check"]
    assert (check.interval, check.job) == (7, periodic.check)
    assert [job.name for job in jobs] == ["router", "alert check"]
    assert started.wait(5)


def test_the_check_command(capsys, db):
    call_command("check_alerts")
    assert "Opened 0, cleared 0 incident(s)" in capsys.readouterr().out


def test_the_webhook_body_does_not_hold_the_target(source, hook):
    rule(hook.workspace, Condition.AUTH_ERROR, channel="webhook", target="https://x.example/")
    incident = incidents.fire(AlertRule.objects.get(), hook, "HTTP 401", timezone.now())
    notice = notify.notices.for_incident(
        AlertIncident.objects.select_related("rule__workspace", "integration").get(pk=incident.pk)
    )
    assert "x.example" not in json.dumps(notice.payload)
