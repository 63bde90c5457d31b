"""The official segment-analytics-python client, pointed at a live console server."""

import datetime as dt
import json

import pytest
import requests
from segment.analytics import Client

from integrations.models import Event

pytestmark = pytest.mark.e2e


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("use_gzip", [False, True])
def test_official_client_events_are_stored_once(live_server, source, use_gzip):
    errors = []
    client = Client(
        source.write_key,
        host=live_server.url,
        gzip=use_gzip,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    client.identify("user-1", {"email": "jane@example.com", "plan": "pro"})
    client.track("user-1", "Signed Up", {"plan": "pro"})
    client.track(
        "user-1", "Order Completed", {"revenue": 12.5}, timestamp=dt.datetime(2024, 1, 1, 12)
    )
    client.group("user-1", "acme", {"name": "Acme"})
    client.page("user-1", "Docs", "Pricing")
    client.screen("user-1", "Home")
    client.alias("anon-1", "user-1")
    client.flush()
    client.join()
    assert errors == []
    events = Event.objects.filter(source=source)
    assert sorted(events.values_list("type", flat=True)) == sorted(
        ["identify", "track", "track", "group", "page", "screen", "alias"]
    )
    order = events.get(event="Order Completed")
    assert order.payload["context"]["library"]["name"] == "analytics-python"
    assert order.original_timestamp == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    assert order.payload["properties"] == {"revenue": 12.5}


@pytest.mark.django_db(transaction=True)
def test_official_client_retry_of_a_batch_is_deduplicated(live_server, source):
    client = Client(source.write_key, host=live_server.url, sync_mode=True)
    client.track("user-1", "Signed Up", message_id="fixed-id")
    body = {
        "batch": [
            {"type": "track", "userId": "user-1", "event": "Signed Up", "messageId": "fixed-id"}
        ],
        "writeKey": source.write_key,
    }
    response = requests.post(
        f"{live_server.url}/v1/batch",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.json()["duplicates"] == 1
    assert Event.objects.filter(message_id="fixed-id").count() == 1
