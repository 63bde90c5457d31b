"""Nothing accepted poisons a workspace: timestamps at the edges of the accepted range,
sent through the real endpoints with offsets, read back everywhere the stack reads them.

The API's events and deliveries (lists and details), the admin's event and delivery lists
and pages, the delivery CSV export, and the worker's claim and send. Values just outside
the range, which once were stored and then broke every one of these reads, are refused.
Runs on SQLite and on PostgreSQL (``TEST_DATABASE_URL``).
"""

import base64
import csv
import hashlib
import hmac
import io
import json
import re
import time

import pytest
import responses
from django.test import Client

from integrations.models import Delivery, Event, Source, WorkspaceMembership
from integrations.sources.segment_spec import MAX_TIMESTAMP, MIN_TIMESTAMP
from tests.test_fanout import make_integration
from tests.traffic import deliver_due

# The edges of the range, in UTC and at the widest offsets there are (±14 h).
LOWEST = ["1900-01-01T00:00:00Z", "1900-01-01T14:00:00+14:00", "1899-12-31T10:00:00-14:00"]
HIGHEST = [
    "2199-12-31T23:59:59.999Z",
    "2200-01-01T13:59:59.999+14:00",
    "2199-12-31T09:59:59.999-14:00",
]
# What the audit stored, and what the database driver could not read back.
JUST_OUTSIDE = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "1899-12-31T23:59:59.999Z",
    "2200-01-01T00:00:00Z",
]
KINDS = ("webhook", "segment", "customerio", "churnzero")


def basic(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def integrations(workspace):
    return [make_integration(workspace, kind=kind, name=kind) for kind in KINDS]


@pytest.fixture
def purchasely(workspace) -> Source:
    return Source.objects.create(
        workspace=workspace, name="App", kind="purchasely", webhook_secret="s3cret"
    )


def store_the_extremes(client, source, purchasely) -> set[str]:
    """Post every edge through each endpoint; the message ids stored."""
    # Every user has the traits ChurnZero needs to name the account and contact.
    traits = {"accountExternalId": "acct", "contactExternalId": "contact"}
    messages = [
        {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits}
        for user in [f"u{number}" for number in range(6)] + ["u", "buyer"]
    ]
    for number, stamp in enumerate(LOWEST + HIGHEST):
        base = {"userId": f"u{number}", "event": "Edge", "type": "track"}
        messages += [
            {**base, "messageId": f"ts-{number}", "timestamp": stamp},
            {**base, "messageId": f"orig-{number}", "originalTimestamp": stamp, "sentAt": stamp},
            {**base, "messageId": f"sent-{number}", "sentAt": stamp, "type": "identify"},
        ]
    response = client.post(
        "/v1/batch",
        json.dumps({"batch": messages}),
        content_type="application/json",
        **basic(source.write_key),
    )
    assert response.status_code == 200, response.content
    assert response.json()["errors"] == []
    ids = {m["messageId"] for m in messages}

    # A batch whose own sentAt is an edge, for a message with its own originalTimestamp.
    body = {
        "sentAt": HIGHEST[1],
        "batch": [
            {"type": "track", "userId": "u0", "event": "Edge", "messageId": "batch-sent"}
            | {"originalTimestamp": HIGHEST[2]}
        ],
    }
    response = client.post(
        "/v1/batch", json.dumps(body), content_type="application/json", **basic(source.write_key)
    )
    assert response.status_code == 200, response.content
    ids.add("batch-sent")

    for number, stamp in enumerate([LOWEST[2], HIGHEST[1]]):
        raw = json.dumps(
            {"type": "group", "userId": "u", "groupId": "g", "messageId": f"hook-{number}"}
            | {"timestamp": stamp, "originalTimestamp": stamp, "sentAt": stamp}
        ).encode()
        signature = hmac.new(source.webhook_secret.encode(), raw, hashlib.sha1).hexdigest()
        response = client.post(
            f"/hooks/segment/{source.webhook_token}/",
            raw,
            content_type="application/json",
            HTTP_X_SIGNATURE=signature,
        )
        assert response.status_code == 200, response.content
        ids.add(f"hook-{number}")

    for event_id, millis in [("p-first", -2208988800000), ("p-last", 7258118399999)]:
        raw = json.dumps(
            {
                "event_name": "SUBSCRIPTION_STARTED",
                "event_id": event_id,
                "event_created_at_ms": millis,
                "user_id": "buyer",
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(b"s3cret", stamp.encode() + raw, hashlib.sha256).hexdigest()
        response = client.post(
            f"/hooks/purchasely/{purchasely.webhook_token}/",
            raw,
            content_type="application/json",
            HTTP_X_PURCHASELY_REQUEST_SIGNATURE=signature,
            HTTP_X_PURCHASELY_TIMESTAMP=stamp,
        )
        assert response.status_code == 200, response.content
        ids |= {event_id, f"{event_id}:identify"}

    retention = Source.objects.create(
        workspace=source.workspace, name="Cancel flow", kind="chargebee_retention"
    )
    for message_id, stamp in [("cbr-first", LOWEST[2]), ("cbr-last", HIGHEST[1])]:
        raw = json.dumps(
            {
                "event": "cancel",
                "id": message_id,
                "client_timestamp": stamp,
                "field.cancel.account.internal_id": "buyer",
                "field.cancel.email": "buyer@example.com",
            }
        ).encode()
        signature = hmac.new(retention.webhook_secret.encode(), raw, hashlib.sha1).hexdigest()
        response = client.post(
            retention.webhook_path,
            raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE=f"sha1={signature}",
        )
        assert response.status_code == 200, response.content
        ids |= {message_id, f"{message_id}:identify"}
    return ids


def post_just_outside(source) -> list[tuple[str, str, int, str]]:
    """Post each value just outside the range as each timestamp field: (field, value,
    status, code) of the answers. Refused, none is stored; should one be (as before the
    range existed), the reads that follow show what it breaks."""
    client = Client(raise_request_exception=False)
    answers = []
    for number, stamp in enumerate(JUST_OUTSIDE):
        for field in ("timestamp", "originalTimestamp", "sentAt"):
            message = {"userId": "u", "event": "Out", "messageId": f"out-{field}-{number}"}
            response = client.post(
                "/v1/track",
                json.dumps({**message, field: stamp}),
                content_type="application/json",
                **basic(source.write_key),
            )
            code = response.json().get("code", "") if response.status_code < 500 else ""
            answers.append((field, stamp, response.status_code, code))
    return answers


@responses.activate
def test_the_extremes_are_stored_and_every_read_works(
    client, admin_client, member_client, workspace, source, purchasely, integrations
):
    for method in (responses.GET, responses.POST, responses.PUT, responses.PATCH):
        responses.add(method, re.compile(r"https://.*"), json={})
    ids = store_the_extremes(client, source, purchasely)
    outside = post_just_outside(source)

    # The worker: every event is routed, sent and recorded.
    deliver_due()
    events = Event.objects.filter(workspace=workspace)
    deliveries = Delivery.objects.filter(event__workspace=workspace)
    assert deliveries.count() > events.count() >= len(ids)
    assert set(deliveries.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}

    # The configuration API: lists (every page) and details.
    api = member_client(WorkspaceMembership.Role.VIEWER)
    for kind, count in (("events", events.count()), ("deliveries", deliveries.count())):
        url, seen = f"/api/v1/workspaces/{workspace.slug}/{kind}/", []
        while url:
            response = api.get(url)
            assert response.status_code == 200, response.content
            seen += response.json()["results"]
            url = response.json()["next"]
        assert len(seen) == count
        for row in seen[:: max(1, len(seen) // 12)]:
            detail = api.get(f"/api/v1/workspaces/{workspace.slug}/{kind}/{row['id']}/")
            assert detail.status_code == 200, detail.content

    # The admin: event and delivery lists and pages, and the CSV export.
    for path in ("/admin/integrations/event/", "/admin/integrations/delivery/"):
        assert admin_client.get(path).status_code == 200
        assert admin_client.get(path, {"o": "-2"}).status_code == 200
    for pk in events.values_list("pk", flat=True):
        assert admin_client.get(f"/admin/integrations/event/{pk}/change/").status_code == 200
    response = admin_client.post(
        "/admin/integrations/delivery/",
        {"action": "export_csv", "_selected_action": list(deliveries.values_list("pk", flat=True))},
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 + deliveries.count()

    for pk in deliveries.values_list("pk", flat=True)[:8]:
        page = admin_client.get(f"/admin/integrations/delivery/{pk}/change/")
        assert page.status_code == 200

    # What was stored is exactly the extremes, at the edges of the range and no further.
    assert set(events.values_list("message_id", flat=True)) == ids
    stamps = {
        stamp
        for row in events.values_list("timestamp", "original_timestamp", "sent_at")
        for stamp in row
        if stamp is not None
    }
    assert min(stamps) == MIN_TIMESTAMP
    assert max(stamps) == MAX_TIMESTAMP.replace(microsecond=999000)
    assert outside == [(field, stamp, 400, "invalid_timestamp") for field, stamp, *_ in outside]
