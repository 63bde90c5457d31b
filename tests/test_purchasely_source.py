"""Purchasely's server-to-server webhook as a source."""

import hashlib
import hmac
import json
import time

import pytest

from integrations.models import Event, Source, UserProfile

EVENT = {
    "api_version": 3,
    "event_name": "SUBSCRIPTION_STARTED",
    "event_id": "evt-1",
    "event_created_at": "2024-03-01T10:00:00.000Z",
    "event_created_at_ms": 1709287200000,
    "user_id": "user-1",
    "store": "APPLE_APP_STORE",
    "plan": "premium_monthly",
    "product": "premium",
    "subscription_status": "AUTO_RENEWING",
    "offer_type": "FREE_TRIAL",
    "store_country": "FR",
    "plan_price_in_eur": 9.99,
}


@pytest.fixture
def purchasely(workspace) -> Source:
    return Source.objects.create(
        workspace=workspace, name="App", kind="purchasely", webhook_secret="foobar"
    )


def signed_post(client, source, body: dict, *, stamp=None, secret="foobar", legacy=False):
    raw = json.dumps(body).encode()
    stamp = str(int(time.time())) if stamp is None else stamp
    message = (secret.encode() + raw) if legacy else (stamp.encode() + raw)
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    headers = {"HTTP_X_PURCHASELY_REQUEST_SIGNATURE": signature}
    if not legacy:
        headers["HTTP_X_PURCHASELY_TIMESTAMP"] = stamp
    return client.post(
        f"/hooks/purchasely/{source.webhook_token}/",
        data=raw,
        content_type="application/json",
        **headers,
    )


def test_event_becomes_identify_and_track(api_client, purchasely):
    response = signed_post(api_client, purchasely, EVENT)
    assert response.status_code == 200, response.json()
    assert response.json() == {"success": True, "duplicate": False}
    track = Event.objects.get(type="track")
    assert track.event == "SUBSCRIPTION_STARTED"
    assert track.message_id == "evt-1"
    assert track.user_id == "user-1"
    assert track.payload["properties"]["plan_price_in_eur"] == 9.99
    assert track.payload["timestamp"] == "2024-03-01T10:00:00.000Z"
    identify = Event.objects.get(type="identify")
    assert identify.payload["traits"]["has_active_subscription"] is True
    assert identify.payload["traits"]["plan"] == "premium_monthly"
    profile = UserProfile.objects.get(user_id="user-1")
    assert profile.traits["subscription_status"] == "AUTO_RENEWING"


def test_anonymous_user_gets_only_a_track(api_client, purchasely):
    body = {**EVENT, "user_id": None, "anonymous_user_id": "anon-9"}
    assert signed_post(api_client, purchasely, body).status_code == 200
    assert list(Event.objects.values_list("type", "anonymous_id")) == [("track", "anon-9")]


def test_redelivery_is_deduplicated_on_event_id(api_client, purchasely):
    signed_post(api_client, purchasely, EVENT)
    again = signed_post(api_client, purchasely, EVENT)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": "wrong"}, "does not match"),
        ({"stamp": str(int(time.time()) - 3600)}, "away from now"),
        ({"stamp": "yesterday"}, "not a unix timestamp"),
        ({"legacy": True}, "does not match"),
    ],
)
def test_bad_signatures_are_401(api_client, purchasely, kwargs, message):
    response = signed_post(api_client, purchasely, EVENT, **kwargs)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert message in response.json()["message"]
    assert not Event.objects.exists()


def test_missing_signature_is_401(api_client, purchasely):
    response = api_client.post(
        f"/hooks/purchasely/{purchasely.webhook_token}/",
        data=json.dumps(EVENT),
        content_type="application/json",
    )
    assert response.status_code == 401


def test_legacy_scheme_behind_the_switch(api_client, purchasely):
    purchasely.accept_legacy_signatures = True
    purchasely.save()
    assert signed_post(api_client, purchasely, EVENT, legacy=True).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**EVENT, "event_name": ""}, "missing_event"),
        ({**EVENT, "event_id": None}, "missing_event_id"),
        ({**EVENT, "user_id": None}, "no_user_anon_id"),
    ],
)
def test_invalid_events_are_400(api_client, purchasely, body, code):
    response = signed_post(api_client, purchasely, body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_segment_token_is_not_a_purchasely_url(api_client, source):
    response = api_client.post(
        f"/hooks/purchasely/{source.webhook_token}/", data="{}", content_type="application/json"
    )
    assert response.status_code == 404


# --- the webhook before api_version 3 ------------------------------------------------------

V2_EVENT = {
    "name": "PURCHASE_VALIDATED",
    "user": {"vendor_id": "user-2"},
    "properties": {
        "store": "APPLE_APP_STORE",
        "product": {"plan": {"type": "CONSUMABLE", "vendor_id": "coins"}, "vendor_id": "shop"},
        "period_type": "FREE_TRIAL",
        "purchase_id": "otp_123",
        "purchased_at": "2021-05-21T12:51:59.066Z",
    },
    "api_version": 2,
    "received_at": "2021-05-21T12:52:03.968Z",
}


def test_an_event_before_api_version_3_is_accepted(api_client, purchasely):
    response = signed_post(api_client, purchasely, V2_EVENT)
    assert response.status_code == 200, response.json()
    track = Event.objects.get(type="track")
    assert (track.event, track.user_id) == ("PURCHASE_VALIDATED", "user-2")
    properties = track.payload["properties"]
    assert properties["purchasely_one_time_purchase_id"] == "otp_123"
    assert properties["offer_type"] == "FREE_TRIAL"
    assert (properties["plan"], properties["product"]) == ("coins", "shop")
    assert track.payload["timestamp"] == "2021-05-21T12:52:03.968Z"
    assert UserProfile.objects.get(user_id="user-2").traits["plan"] == "coins"


def test_an_anonymous_event_before_api_version_3_gets_only_a_track(api_client, purchasely):
    body = {**V2_EVENT, "user": {"anonymous_id": "anon-2"}}
    assert signed_post(api_client, purchasely, body).status_code == 200
    assert list(Event.objects.values_list("type", "anonymous_id")) == [("track", "anon-2")]


def test_a_redelivery_before_api_version_3_is_kept_once(api_client, purchasely):
    signed_post(api_client, purchasely, V2_EVENT)
    again = signed_post(api_client, purchasely, V2_EVENT)
    assert again.json()["duplicate"] is True
    other = signed_post(api_client, purchasely, {**V2_EVENT, "name": "SUBSCRIPTION_EXPIRED"})
    assert other.json()["duplicate"] is False
    assert Event.objects.filter(type="track").count() == 2


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({**V2_EVENT, "name": ""}, "missing_event", "event_name is missing"),
        ({**V2_EVENT, "user": "user-2"}, "invalid_message", "user must be an object"),
        ({**V2_EVENT, "properties": [1]}, "invalid_message", "properties must be an object"),
        (
            {**V2_EVENT, "properties": {"product": "shop"}},
            "invalid_message",
            "properties.product must be an object",
        ),
        (
            {**V2_EVENT, "properties": {"product": {"plan": 5}}},
            "invalid_message",
            "properties.product.plan must be an object",
        ),
        ({**V2_EVENT, "user": {}}, "no_user_anon_id", ""),
        ({**V2_EVENT, "received_at": "yesterday"}, "invalid_timestamp", ""),
    ],
)
def test_a_bad_event_before_api_version_3_is_400(api_client, purchasely, body, code, message):
    response = signed_post(api_client, purchasely, body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert message in response.json()["message"]
