"""Integration health sees the backlog; the worker signals the vendors' answers."""

import pytest
import responses

from integrations.delivery.health import health
from integrations.delivery.signals import exchanges_recorded
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


@responses.activate
def test_health_counts_the_backlog_and_the_latest_error(source, hook):
    responses.post(URL, status=503, body="down for maintenance")
    send(source, type="track", userId="u1", event="A", messageId="m1")
    send(source, type="track", userId="u2", event="B", messageId="m2")
    route()
    before = health(hook)
    assert (before.pending, before.retrying, before.delivered, before.failed) == (2, 0, 0, 0)
    assert before.oldest_waiting_seconds is not None and before.oldest_waiting_seconds >= 0
    assert before.last_attempt_at is None
    deliver_due(hook)
    after = health(hook)
    assert (after.pending, after.retrying) == (0, 2)
    assert "HTTP 503" in after.last_error and "down for maintenance" in after.last_error
    assert after.as_dict()["retrying"] == 2
    assert after.last_attempt_at is not None


@responses.activate
def test_exchanges_recorded_reports_each_answer(source, hook, django_capture_on_commit_callbacks):
    responses.post(URL, status=401, body="bad key")
    heard = []

    def receiver(sender, integration, answers, **kwargs):
        heard.append((integration.pk, answers))

    exchanges_recorded.connect(receiver)
    try:
        send(source, type="track", userId="u1", event="A", messageId="m1")
        with django_capture_on_commit_callbacks(execute=True):
            deliver_due(hook)
    finally:
        exchanges_recorded.disconnect(receiver)
    assert len(heard) == 1
    integration_id, answers = heard[0]
    assert integration_id == hook.pk
    assert answers[0][0] == 401 and "bad key" in answers[0][1]


@responses.activate
def test_exchanges_recorded_names_the_types_of_the_events_written(
    source, hook, django_capture_on_commit_callbacks
):
    responses.post(URL, status=200, json={})
    heard = []

    def receiver(sender, event_types, **kwargs):
        heard.append(event_types)

    exchanges_recorded.connect(receiver)
    try:
        send(source, type="track", userId="u1", event="A", messageId="m1")
        send(source, type="identify", userId="u1", messageId="m2")
        with django_capture_on_commit_callbacks(execute=True):
            deliver_due(hook)
    finally:
        exchanges_recorded.disconnect(receiver)
    assert heard == [frozenset({"track", "identify"})]
