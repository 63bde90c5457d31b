"""The URL Segment's Webhooks destination posts to, with its X-Signature checks."""

import hashlib
import hmac
import json

import pytest

from integrations.models import Event


def sign(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def post(client, source, raw: bytes, signature: str | None = None):
    headers = {"HTTP_X_SIGNATURE": signature} if signature is not None else {}
    return client.post(
        f"/hooks/segment/{source.webhook_token}/",
        data=raw,
        content_type="application/json",
        **headers,
    )


MESSAGE = {
    "type": "track",
    "event": "accept_offer",
    "userId": "u1",
    "messageId": "seg-1",
    "originalTimestamp": "2020-11-06T00:53:10.886Z",
    "timestamp": "2020-11-06T00:53:11.000Z",
    "receivedAt": "2020-11-06T00:53:11.100Z",
    "properties": {"field.cancel.account.plan": "Premium"},
}


def test_signed_single_message_is_stored(api_client, source):
    raw = json.dumps(MESSAGE).encode()
    response = post(api_client, source, raw, sign(source.webhook_secret, raw))
    assert response.status_code == 200, response.json()
    event = Event.objects.get()
    assert event.event == "accept_offer"
    # Segment already corrected the timestamp: it is kept.
    assert event.payload["timestamp"] == "2020-11-06T00:53:11.000Z"
    assert event.payload["properties"] == MESSAGE["properties"]


def test_signed_array_is_checked_against_its_first_element(api_client, source):
    second = {**MESSAGE, "messageId": "seg-2", "type": "identify"}
    # As JSON.stringify writes it: no spaces, floats as written.
    first_text = json.dumps({**MESSAGE, "properties": {"value": 1.0}}, separators=(",", ":"))
    raw = f"[{first_text},{json.dumps(second)}]".encode()
    response = post(api_client, source, raw, sign(source.webhook_secret, first_text.encode()))
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 2
    assert Event.objects.count() == 2


def test_array_signed_over_whole_body_is_refused(api_client, source):
    raw = json.dumps([MESSAGE]).encode()
    response = post(api_client, source, raw, sign(source.webhook_secret, raw + b"x"))
    assert response.status_code == 401


@pytest.mark.parametrize("signature", [None, "", "0" * 40, "not-hex", "é"])
def test_bad_or_missing_signature_is_401(api_client, source, signature):
    raw = json.dumps(MESSAGE).encode()
    response = post(api_client, source, raw, signature)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not Event.objects.exists()


def test_signature_of_another_secret_is_401(api_client, source):
    raw = json.dumps(MESSAGE).encode()
    response = post(api_client, source, raw, sign("other-secret", raw))
    assert response.status_code == 401


def test_without_a_secret_signatures_are_not_checked(api_client, source):
    source.webhook_secret = ""
    source.save()
    response = post(api_client, source, json.dumps(MESSAGE).encode())
    assert response.status_code == 200


def test_unknown_token_is_404(api_client, db):
    response = api_client.post("/hooks/segment/nope/", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_webhook"


def test_disabled_source_is_403(api_client, source):
    source.enabled = False
    source.save()
    raw = json.dumps(MESSAGE).encode()
    assert post(api_client, source, raw, sign(source.webhook_secret, raw)).status_code == 403


def test_invalid_message_is_400_and_duplicates_acknowledged(api_client, source):
    bad = json.dumps({"type": "track", "userId": "u1"}).encode()
    response = post(api_client, source, bad, sign(source.webhook_secret, bad))
    assert response.status_code == 400
    assert response.json()["code"] == "missing_event"
    raw = json.dumps(MESSAGE).encode()
    post(api_client, source, raw, sign(source.webhook_secret, raw))
    again = post(api_client, source, raw, sign(source.webhook_secret, raw))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Event.objects.count() == 1


def test_old_secret_stops_working_after_regeneration(api_client, source):
    old_secret = source.webhook_secret
    old_token = source.webhook_token
    source.regenerate_keys()
    raw = json.dumps(MESSAGE).encode()
    response = api_client.post(
        f"/hooks/segment/{old_token}/",
        data=raw,
        content_type="application/json",
        HTTP_X_SIGNATURE=sign(old_secret, raw),
    )
    assert response.status_code == 404
    assert post(api_client, source, raw, sign(old_secret, raw)).status_code == 401


def test_an_unstorable_message_in_an_array_costs_only_itself(api_client, source):
    good = json.dumps({**MESSAGE, "messageId": "seg-ok"})
    bad = json.dumps({**MESSAGE, "messageId": "seg-bad"}).replace("Premium", "Pre\\u0000mium")
    raw = f"[{good}, {bad}]".encode()
    response = post(api_client, source, raw, sign(source.webhook_secret, good.encode()))
    assert response.status_code == 200
    assert [e["code"] for e in response.json()["errors"]] == ["invalid_string"]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["seg-ok"]


def test_an_unstorable_single_message_is_400(api_client, source):
    raw = json.dumps(MESSAGE).replace("Premium", "Pre\\u0000mium").encode()
    response = post(api_client, source, raw, sign(source.webhook_secret, raw))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_string"


def test_a_nul_in_the_webhook_url_is_404(api_client, source):
    response = api_client.post(
        "/hooks/segment/ab%00cd/", data="{}", content_type="application/json"
    )
    assert response.status_code == 404
