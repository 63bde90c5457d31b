"""Chargebee Retention's own webhooks as a source: X-Hub-Signature, its events as track
(and identify) calls under the catalog's names, redeliveries kept once, a clear 4xx for
anything else, and the source in the admin, the API, the catalog and the tester."""

import gzip
import hashlib
import hmac
import json

import pytest
from django.urls import reverse

from integrations import catalog, samples
from integrations.models import Event, RejectedCall, Source, UserProfile, WorkspaceMembership
from integrations.sources.chargebee_retention import ChargebeeRetention, event_name

SECRET = "cbr-shared-secret"
EVENT = {
    "event": "cancel",
    "app_id": "9Nyv3KZvQJ",
    "client_timestamp": "2020-11-06T00:53:10.815Z",
    "field.cancel.account.internal_id": "9f827f6",
    "field.cancel.email": "jane@example.com",
    "field.cancel.first_name": "Jane",
    "survey.brightback_reason": "too_expensive",
    "user_id": "KD21akKyAZ",
}


@pytest.fixture
def retention(workspace) -> Source:
    return Source.objects.create(
        workspace=workspace, name="Cancel flow", kind="chargebee_retention", webhook_secret=SECRET
    )


def signature(raw: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()


def post(client, source: Source, body, *, signed: str | None = "prefixed", raw=None, **headers):
    raw = json.dumps(body).encode() if raw is None else raw
    if signed == "prefixed":
        headers["HTTP_X_HUB_SIGNATURE"] = "sha1=" + signature(raw)
    elif signed is not None:
        headers["HTTP_X_HUB_SIGNATURE"] = signed
    return client.post(
        f"/hooks/chargebee-retention/{source.webhook_token}/",
        data=raw,
        content_type="application/json",
        **headers,
    )


def test_an_event_becomes_an_identify_and_a_track_call(api_client, retention):
    response = post(api_client, retention, EVENT)
    assert response.status_code == 200, response.json()
    assert response.json() == {"success": True, "duplicate": False}
    track = Event.objects.get(type="track")
    assert (track.event, track.user_id, track.anonymous_id) == ("cancel", "9f827f6", "KD21akKyAZ")
    assert track.payload["properties"]["survey.brightback_reason"] == "too_expensive"
    assert track.payload["timestamp"] == "2020-11-06T00:53:10.815Z"
    assert track.source == retention
    profile = UserProfile.objects.get(user_id="9f827f6")
    assert profile.traits["email"] == "jane@example.com"
    assert profile.traits["cancel.first_name"] == "Jane"


def test_the_plain_hex_signature_is_taken_too(api_client, retention):
    raw = json.dumps(EVENT).encode()
    assert post(api_client, retention, EVENT, signed=signature(raw).upper()).status_code == 200


def test_a_redelivery_has_the_same_message_id_and_is_kept_once(api_client, retention):
    first = post(api_client, retention, EVENT)
    again = post(api_client, retention, EVENT)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    assert Event.objects.count() == 2
    other = post(api_client, retention, {**EVENT, "event": "save"})
    assert other.json()["duplicate"] is False
    assert Event.objects.count() == 4


@pytest.mark.parametrize(
    ("signed", "message"),
    [
        (None, "X-Hub-Signature is missing"),
        ("sha1=" + "0" * 40, "does not match"),
        ("sha256=abc", "does not match"),
        ("é" * 3, "does not match"),
        ("A" * 5000, "does not match"),
    ],
)
def test_a_missing_or_bad_signature_is_401(api_client, retention, signed, message):
    response = post(api_client, retention, EVENT, signed=signed)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert message in response.json()["message"]
    assert not Event.objects.exists()


def test_another_secret_is_401_and_recorded_without_it(api_client, retention):
    raw = json.dumps(EVENT).encode()
    response = post(api_client, retention, EVENT, signed=signature(raw, "another"))
    assert response.status_code == 401
    call = RejectedCall.objects.get()
    assert (call.source, call.code) == (retention, "invalid_signature")
    assert call.endpoint == "/hooks/chargebee-retention/<token>/"
    assert "X-Hub-Signature sent" in call.summary
    assert SECRET not in call.summary and signature(raw, "another") not in call.summary


def test_without_a_secret_signatures_are_not_checked(api_client, retention):
    retention.webhook_secret = ""
    retention.save()
    assert post(api_client, retention, EVENT, signed=None).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ([EVENT], "invalid_message", "is a JSON object"),
        ({"app_id": "x", "user_id": "u"}, "missing_event", "not a Chargebee Retention event"),
        ({**EVENT, "event": 7}, "missing_event", "not a Chargebee Retention event"),
        ({**EVENT, "event": "x" * 201}, "event_name_too_long", "200"),
        ({**EVENT, "properties": "cancel"}, "invalid_properties", "must be an object"),
        ({**EVENT, "id": "i" * 92}, "message_id_too_long", "91"),
        ({**EVENT, "client_timestamp": "9999-01-01T00:00:00Z"}, "invalid_timestamp", ""),
        ({**EVENT, "field.cancel.account.internal_id": {"a": 1}}, "invalid_identifier", ""),
        ({"event": "cancel", "app_id": "x"}, "no_user_anon_id", ""),
    ],
)
def test_what_is_not_a_chargebee_retention_event_is_400(api_client, retention, body, code, message):
    response = post(api_client, retention, body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert message in response.json()["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"event": NaN}',
        b'{"event": "cancel", "x": 1e999}',
        "é".encode("utf-16"),
        b"[" * 100 + b"]" * 100,
        b'{"event": "cancel", "user_id": "\\u0000"}',
    ],
)
def test_a_body_that_cannot_be_stored_is_400(api_client, retention, raw):
    response = post(api_client, retention, None, raw=raw)
    assert response.status_code == 400, response.content
    assert not Event.objects.exists()


def test_a_gzip_body_is_taken_and_an_oversized_one_is_413(api_client, retention):
    raw = gzip.compress(json.dumps(EVENT).encode())
    headers = {"HTTP_CONTENT_ENCODING": "gzip"}
    ok = post(api_client, retention, None, raw=raw, **headers, signed=None)
    assert ok.status_code == 401  # the signature covers the body as received: decompressed
    signed = "sha1=" + signature(json.dumps(EVENT).encode())
    assert post(api_client, retention, None, raw=raw, signed=signed, **headers).status_code == 200
    big = json.dumps({**EVENT, "pad": "x" * 70_000}).encode()
    assert post(api_client, retention, None, raw=big).status_code == 413


def test_a_disabled_source_is_403_and_another_kinds_token_404(api_client, retention, source):
    assert post(api_client, source, EVENT).status_code == 404
    retention.enabled = False
    retention.save()
    assert post(api_client, retention, EVENT).status_code == 403


@pytest.mark.parametrize(
    ("sent", "name"),
    [
        ("cancel", "cancel"),
        ("Watch List", "watchlist"),
        ("offer-accepted", "accept_offer"),
        ("Page Loaded", "page_loaded"),
        ("ACCEPT_OFFER", "accept_offer"),
        ("Survey Completed", "survey_completed"),
    ],
)
def test_event_types_take_the_catalogs_names(sent, name):
    assert event_name(sent) == name


def test_the_catalog_and_the_tester_know_its_events(workspace, retention):
    entries = catalog.catalog(workspace)
    names = {entry.name for entry in entries if entry.group == "Chargebee Retention"}
    assert names == set(ChargebeeRetention.known_event_names())
    assert "accept_offer" in samples.sample_names()


def test_the_api_creates_it_with_its_url_and_its_secret_once(member_client, workspace):
    api = member_client(WorkspaceMembership.Role.CSM, "api-csm")
    path = f"/api/v1/workspaces/{workspace.slug}/sources/"
    response = api.post(path, {"name": "Cancel flow", "kind": "chargebee_retention"}, format="json")
    assert response.status_code == 201, response.json()
    source = Source.objects.get()
    body = response.json()
    assert body["kind"] == "chargebee_retention"
    assert body["webhook_url"].endswith(f"/hooks/chargebee-retention/{source.webhook_token}/")
    assert body["webhook_secret"] == source.webhook_secret
    again = api.get(f"{path}{source.pk}/").json()
    assert "webhook_secret" not in again and again["webhook_url"] == body["webhook_url"]


def test_the_admin_offers_the_kind_and_shows_the_url_and_the_secret_once(csm, workspace):
    add = reverse("admin:integrations_source_add")
    assert 'value="chargebee_retention"' in csm.get(add).content.decode()
    data = {"workspace": workspace.pk, "name": "Cancel flow", "kind": "chargebee_retention"}
    text = csm.post(add, {**data, "enabled": "on"}).content.decode()
    source = Source.objects.get()
    assert source.webhook_secret in text
    assert f"/hooks/chargebee-retention/{source.webhook_token}/" in text
    change = csm.get(reverse("admin:integrations_source_change", args=[source.pk]))
    assert source.webhook_secret not in change.content.decode()
    assert f"/hooks/chargebee-retention/{source.webhook_token}/" in change.content.decode()


def test_the_legacy_signature_switch_is_refused_for_a_kind_without_one(csm, workspace):
    data = {"workspace": workspace.pk, "name": "Cancel flow", "kind": "chargebee_retention"}
    add = reverse("admin:integrations_source_add")
    response = csm.post(add, {**data, "accept_legacy_signatures": "on"})
    assert response.status_code == 200
    assert "Chargebee Retention has no older signature scheme" in response.content.decode()
    assert not Source.objects.exists()
    purchasely = {**data, "kind": "purchasely", "accept_legacy_signatures": "on"}
    assert csm.post(add, purchasely).status_code == 200  # the secret, shown once
    assert Source.objects.get().accept_legacy_signatures is True
