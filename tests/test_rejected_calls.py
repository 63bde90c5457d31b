"""The log of rejected inbound calls: what is kept (and what never is), for every ingest
endpoint, kept bounded, and listed per workspace in the admin."""

import json

import pytest
from django.test import Client

from integrations.models import RejectedCall, Source, Workspace
from tests.test_purchasely_source import EVENT, signed_post
from tests.test_segment_webhook import MESSAGE, sign
from tests.test_segment_webhook import post as webhook_post
from tests.test_tracking_api import post, track

UNKNOWN_KEY = "ZzTopSecretKeyThatMatchesNothing0123"


def every_value(call: RejectedCall) -> str:
    return json.dumps(
        {f.name: str(getattr(call, f.attname)) for f in RejectedCall._meta.concrete_fields}
    )


def test_an_unknown_write_key_is_kept_without_a_workspace_or_the_key(api_client, source):
    response = post(api_client, "/v1/track", track(), write_key=UNKNOWN_KEY)
    assert response.status_code == 401
    call = RejectedCall.objects.get()
    assert (call.workspace, call.source) == (None, None)
    assert (call.endpoint, call.status_code, call.code) == ("/v1/track", 401, "invalid_write_key")
    assert call.message == "Unknown write key."
    assert call.client_ip == "127.0.0.1"
    assert call.rejected_messages is None
    assert "write key “ZzTo…” (36 characters) (Basic auth)" in call.summary
    assert "application/json" in call.summary
    assert UNKNOWN_KEY not in every_value(call) and "SecretKey" not in every_value(call)


def test_a_short_unknown_key_is_not_even_hinted(api_client, source):
    post(api_client, "/v1/track", track(), write_key="abc123")
    assert "write key of 6 characters" in RejectedCall.objects.get().summary


def test_a_missing_write_key_is_kept(api_client, source):
    post(api_client, "/v1/batch", {"batch": [track()]})
    call = RejectedCall.objects.get()
    assert (call.endpoint, call.code, call.workspace) == ("/v1/batch", "missing_write_key", None)


def test_an_invalid_message_is_kept_with_its_source(api_client, source):
    response = post(api_client, "/v1/track", {"event": "E"}, write_key=source.write_key)
    assert response.status_code == 400
    call = RejectedCall.objects.get()
    assert (call.workspace, call.source) == (source.workspace, source)
    assert call.code == "no_user_anon_id"
    assert "userId or anonymousId" in call.message
    assert "write key (Basic auth)" in call.summary
    assert source.write_key not in every_value(call)


def test_refused_messages_of_an_accepted_batch_make_one_row_with_the_count(api_client, source):
    ok = track(type="track")
    body = {"batch": [ok, {"type": "track"}, {**ok, "messageId": "m2"}, {"type": "identify"}]}
    response = post(api_client, "/v1/batch", body, write_key=source.write_key)
    assert response.status_code == 200 and response.json()["accepted"] == 2
    call = RejectedCall.objects.get()
    assert (call.status_code, call.rejected_messages, call.source) == (200, 2, source)
    assert call.code == "no_user_anon_id"
    assert call.message.startswith("2 of 4 messages refused; the first, #1: no_user_anon_id")


def test_a_batch_with_no_valid_message(api_client, source):
    body = {"batch": [{"type": "track"}, {"type": "track"}, {"type": "track"}]}
    post(api_client, "/v1/batch", body, write_key=source.write_key)
    call = RejectedCall.objects.get()
    assert (call.status_code, call.code, call.rejected_messages) == (400, "invalid_batch", 3)


def test_an_accepted_call_is_not_kept(api_client, source):
    assert post(api_client, "/v1/track", track(), write_key=source.write_key).status_code == 200
    assert not RejectedCall.objects.exists()


def test_a_disabled_source_is_kept_with_its_workspace(api_client, source):
    Source.objects.filter(pk=source.pk).update(enabled=False)
    post(api_client, "/v1/track", track(), write_key=source.write_key)
    call = RejectedCall.objects.get()
    assert (call.code, call.status_code, call.source_id) == ("source_disabled", 403, source.pk)


def test_a_bad_segment_signature_is_kept_without_signature_or_token(api_client, source):
    raw = json.dumps(MESSAGE).encode()
    signature = sign("not-the-secret", raw)
    assert webhook_post(api_client, source, raw, signature).status_code == 401
    call = RejectedCall.objects.get()
    assert call.source == source and call.code == "invalid_signature"
    assert call.endpoint == "/hooks/segment/<token>/"
    assert "X-Signature sent" in call.summary
    text = every_value(call)
    for secret in (signature, source.webhook_token, source.webhook_secret, "accept_offer"):
        assert secret not in text


def test_a_wrong_purchasely_secret_shows_up(api_client, workspace):
    source = Source.objects.create(
        workspace=workspace, name="App", kind="purchasely", webhook_secret="foobar"
    )
    assert signed_post(api_client, source, EVENT, secret="wrong").status_code == 401
    call = RejectedCall.objects.get()
    assert (call.workspace, call.source, call.code) == (workspace, source, "invalid_signature")
    assert call.endpoint == "/hooks/purchasely/<token>/"
    assert "X-PURCHASELY-REQUEST-SIGNATURE, X-PURCHASELY-TIMESTAMP sent" in call.summary
    assert "SUBSCRIPTION_STARTED" not in every_value(call)


def test_an_unknown_webhook_url_is_kept_without_a_workspace(api_client, db):
    api_client.post("/hooks/segment/no-such-token/", data="{}", content_type="application/json")
    call = RejectedCall.objects.get()
    assert (call.status_code, call.code, call.workspace) == (404, "unknown_webhook", None)
    assert call.endpoint == "/hooks/segment/<token>/"


def test_other_endpoints_are_not_watched(api_client, db):
    api_client.get("/api/v1/workspaces/")
    api_client.post("/admin/login/", {"username": "x", "password": "y"})
    assert not RejectedCall.objects.exists()


def test_a_failure_to_record_never_changes_the_answer(api_client, source, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(RejectedCall, "save", broken)
    response = post(api_client, "/v1/track", track(), write_key=UNKNOWN_KEY)
    assert response.status_code == 401 and response.json()["code"] == "invalid_write_key"
    assert "could not record a rejected call to /v1/track" in caplog.text


def test_the_log_keeps_the_newest_calls_of_each_workspace(api_client, source, settings):
    settings.REJECTED_CALLS_KEEP = 3
    made = {"workspace": [], "none": []}
    for i in range(6):
        post(api_client, "/v1/track", {"event": f"E{i}"}, write_key=source.write_key)
        made["workspace"].append(RejectedCall.objects.latest("pk").pk)
        post(api_client, "/v1/track", track(), write_key=f"{UNKNOWN_KEY}{i}")
        made["none"].append(RejectedCall.objects.latest("pk").pk)
    kept = RejectedCall.objects.filter(workspace=source.workspace).values_list("pk", flat=True)
    assert sorted(kept) == made["workspace"][-3:]
    unknown = RejectedCall.objects.filter(workspace=None).values_list("pk", flat=True)
    assert sorted(unknown) == made["none"][-3:]


def test_keeping_none_records_nothing(api_client, source, settings):
    settings.REJECTED_CALLS_KEEP = 0
    assert post(api_client, "/v1/track", track(), write_key=UNKNOWN_KEY).status_code == 401
    assert not RejectedCall.objects.exists()


def test_pruning_leaves_other_workspaces_alone(db, source):
    other = Workspace.objects.create(name="Other", slug="other")
    for workspace in (source.workspace, other):
        for _ in range(4):
            RejectedCall.objects.create(
                workspace=workspace, endpoint="/v1/track", status_code=400, code="x", message="m"
            )
    assert RejectedCall.objects.prune(source.workspace.pk, keep=1) == 3
    assert RejectedCall.objects.filter(workspace=other).count() == 4


# --- admin ----------------------------------------------------------------------------

LIST = "/admin/integrations/rejectedcall/"


def test_the_admin_lists_a_workspaces_calls_and_superusers_see_the_unknown_ones(
    api_client, csm, source, django_user_model
):
    post(api_client, "/v1/track", {"event": "E"}, write_key=source.write_key)
    post(api_client, "/v1/track", track(), write_key=UNKNOWN_KEY)
    listing = csm.get(LIST).content.decode()
    assert "no_user_anon_id" in listing and "invalid_write_key" not in listing
    assert csm.get(f"{LIST}?code__exact=no_user_anon_id").status_code == 200
    root = Client()
    root.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    listing = root.get(LIST).content.decode()
    assert "no_user_anon_id" in listing and "invalid_write_key" in listing
    unknown = RejectedCall.objects.get(workspace=None)
    assert csm.get(f"{LIST}{unknown.pk}/change/").status_code == 302  # not found: redirected
    assert csm.get(f"{LIST}add/").status_code == 403


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_the_endpoint_is_the_path(api_client, source, path):
    post(api_client, path, {}, write_key=UNKNOWN_KEY)
    assert RejectedCall.objects.get().endpoint == path
