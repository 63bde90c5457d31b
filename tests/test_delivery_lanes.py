"""Requests sent side by side: concurrency, per-person order, errors and deferral."""

import datetime as dt
import json
import threading
import time

import pytest
import responses
from django.utils import timezone

from integrations.delivery import engine, lanes
from integrations.delivery.engine import Run
from integrations.delivery.tasks import QUEUE
from integrations.models import Delivery, Dispatch, Integration
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(workspace) -> Integration:
    return make_integration(workspace)  # a webhook integration posting to URL


def deliver_all(integration: Integration) -> None:
    deliver_due(integration)


def test_items_sharing_a_key_form_one_group_in_order():
    keys = [{"a"}, {"b"}, {"c"}, {"a", "c"}, {"d"}, {"b"}]
    assert lanes.group_by_shared_keys(keys) == [[0, 2, 3], [1, 5], [4]]


def test_groups_are_spread_over_the_lanes_keeping_order():
    assigned = lanes.assign_lanes([[0, 2, 3], [1, 5], [4], [6]], 2)
    assert sorted(len(lane) for lane in assigned) == [3, 4]
    assert all(lane == sorted(lane) for lane in assigned)
    assert sorted(i for lane in assigned for i in lane) == list(range(7))


def test_lanes_yield_ticks_while_waiting_and_every_outcome_once():
    def work(index: int) -> int:
        time.sleep(0.2)
        if index == 2:
            raise ValueError("boom")
        return index * 10

    outcomes = list(lanes.run(4, lambda i: {i}, work, lambda: True, lanes=4, tick=0.02))
    assert None in outcomes
    finished = {o.index: o for o in outcomes if o is not None}
    assert sorted(finished) == [0, 1, 2, 3]
    assert finished[3].result == 30
    assert isinstance(finished[2].error, ValueError)


def test_lanes_skip_work_once_told_to_stop():
    stop = threading.Event()

    def work(index: int) -> int:
        stop.set()
        return index

    outcomes = list(lanes.run(3, lambda i: {"same"}, work, lambda: not stop.is_set(), lanes=4))
    assert [(o.index, o.skipped) for o in outcomes] == [(0, False), (1, True), (2, True)]


@responses.activate
def test_requests_for_different_people_are_in_flight_together(source, hook, settings):
    settings.DELIVERY_CONCURRENCY = 4
    together = threading.Barrier(4, timeout=5)

    def vendor(request):
        together.wait()  # breaks (and the test fails) unless four requests are in flight
        return (200, {}, "{}")

    responses.add_callback(responses.POST, URL, callback=vendor)
    for number in range(8):
        send(source, type="track", userId=f"user-{number}", event="E", messageId=f"m{number}")
    deliver_all(hook)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


@responses.activate
def test_one_persons_requests_keep_their_order(source, hook, settings):
    settings.DELIVERY_CONCURRENCY = 8
    arrived: list[str] = []

    def vendor(request):
        body = json.loads(request.body)
        if body["messageId"] == "a1":
            time.sleep(0.3)  # slow first request: a later one in another lane would overtake
        arrived.append(body["messageId"])
        return (200, {}, "{}")

    responses.add_callback(responses.POST, URL, callback=vendor)
    send(source, type="page", anonymousId="anon-a", messageId="a1")
    send(source, type="track", userId="b", event="E", messageId="b1")
    send(source, type="identify", anonymousId="anon-a", userId="a", messageId="a2")
    send(source, type="track", userId="a", event="E", messageId="a3")
    send(source, type="alias", previousId="a", userId="a-new", messageId="a4")
    send(source, type="track", userId="a-new", event="E", messageId="a5")
    deliver_all(hook)
    assert [m for m in arrived if m.startswith("a")] == ["a1", "a2", "a3", "a4", "a5"]
    assert arrived.index("b1") < arrived.index("a1")  # b's lane did not wait for a's


@responses.activate
def test_a_429_in_one_lane_defers_what_has_not_started(source, hook, settings):
    settings.DELIVERY_CONCURRENCY = 2
    started = timezone.now()
    responses.post(URL, status=429, headers={"Retry-After": "60"})
    for number in range(10):
        send(source, type="track", userId=f"u{number % 2}", event="E", messageId=f"r{number}")
    deliver_all(hook)
    sent = len(responses.calls)
    assert 1 <= sent <= 2
    tried = list(Delivery.objects.all())
    assert len(tried) == sent
    assert {(d.status, d.attempt_count, d.leased_until) for d in tried} == {("retrying", 1, None)}
    # What had not started waits in its dispatch, released, until the vendor's time.
    dispatch = Dispatch.objects.get()
    assert dispatch.leased_until is None
    assert dispatch.size - dispatch.done >= 10 - sent
    assert dispatch.next_attempt_at >= started + dt.timedelta(seconds=59)  # Retry-After: 60
    assert all(d.next_attempt_at >= dispatch.next_attempt_at for d in tried)
    assert "rate limited" in dispatch.waiting_reason


@responses.activate
def test_an_error_while_sending_retries_visibly(source, hook, monkeypatch, settings):
    settings.DELIVERY_CONCURRENCY = 4

    def broken(self, request):
        raise RuntimeError("bug in the sender")

    monkeypatch.setattr(Run, "exchange_all_steps", broken)
    send(source, type="track", userId="u1", event="E", messageId="x1")
    send(source, type="track", userId="u2", event="E", messageId="x2")
    deliver_all(hook)
    for delivery in Delivery.objects.all():
        assert delivery.status == "retrying"
        assert delivery.leased_until is None
        assert "bug in the sender" in delivery.last_error


def test_a_rate_limited_vendor_is_sent_one_request_at_a_time(workspace, settings):
    settings.DELIVERY_CONCURRENCY = 8
    chartmogul = make_integration(workspace, kind="chartmogul", name="ChartMogul")
    webhook = make_integration(workspace, name="Hook")
    assert Run(chartmogul, "scheduled", QUEUE).concurrency == 1
    assert Run(webhook, "scheduled", QUEUE).concurrency == 8


@pytest.mark.parametrize("concurrency", [1, 4])
@responses.activate
def test_every_delivery_is_recorded_once_at_any_concurrency(source, hook, settings, concurrency):
    settings.DELIVERY_CONCURRENCY = concurrency
    responses.post(URL, status=200, json={})
    for number in range(30):
        send(source, type="track", userId=f"u{number % 7}", event="E", messageId=f"c{number}")
    deliver_all(hook)
    assert len(responses.calls) == 30
    assert Delivery.objects.count() == 30
    for delivery in Delivery.objects.all():
        assert (delivery.status, delivery.attempt_count) == ("delivered", 1)
        assert len(delivery.attempt_log()) == 1


@pytest.mark.parametrize("concurrency", [1, 4])
@responses.activate
def test_the_next_chunk_is_planned_while_the_current_one_is_sent(
    source, hook, settings, monkeypatch, concurrency
):
    """Planned ahead, never sent ahead: a chunk's requests go out once the one before
    it has all its outcomes (one person's requests may be in both)."""
    settings.DELIVERY_CONCURRENCY = concurrency
    monkeypatch.setattr(engine, "CHUNK_SIZE", 2)
    happened: list[str] = []
    planned = Run.prepare_chunk

    def prepare_chunk(self, items):
        happened.append("plan " + ",".join(sorted(item.event.message_id for item in items)))
        return planned(self, items)

    def vendor(request):
        time.sleep(0.05)  # the chunk after is planned meanwhile
        happened.append("sent " + json.loads(request.body)["messageId"])
        return (200, {}, "{}")

    monkeypatch.setattr(Run, "prepare_chunk", prepare_chunk)
    responses.add_callback(responses.POST, URL, callback=vendor)
    for number in range(5):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
    deliver_all(hook)
    chunks = [["m0", "m1"], ["m2", "m3"], ["m4"]]
    assert [h for h in happened if h.startswith("plan")] == [
        "plan " + ",".join(chunk) for chunk in chunks
    ]
    for index, chunk in enumerate(chunks):
        sent = [happened.index(f"sent {m}") for m in chunk]
        if index + 1 < len(chunks):
            # The next chunk was planned before this one's last answer came back ...
            assert happened.index("plan " + ",".join(chunks[index + 1])) < max(sent)
            # ... and none of its requests went out before that answer.
            assert max(sent) < min(happened.index(f"sent {m}") for m in chunks[index + 1])
    assert Delivery.objects.filter(status="delivered").count() == 5
    assert not Dispatch.objects.exists()


@responses.activate
def test_a_chunk_planned_ahead_waits_in_its_dispatch_when_the_run_halts(
    source, hook, settings, monkeypatch
):
    settings.DELIVERY_CONCURRENCY = 1
    monkeypatch.setattr(engine, "CHUNK_SIZE", 2)
    responses.post(URL, status=429, headers={"Retry-After": "60"})
    for number in range(5):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
    deliver_all(hook)
    assert len(responses.calls) == 1
    assert Delivery.objects.count() == 1
    dispatch = Dispatch.objects.get()
    assert (dispatch.size - dispatch.done, dispatch.leased_until) == (4, None)
    assert dispatch.next_attempt_at >= timezone.now() + dt.timedelta(seconds=55)
