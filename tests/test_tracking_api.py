"""The Segment-compatible HTTP Tracking API: auth, limits, validation, dedupe, durability."""

import base64
import gzip
import json
import uuid

import pytest
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, Dispatch, Event, RoutingJob, Source, Workspace
from tests.traffic import route


def post(client, path, body, *, write_key=None, raw=None, **headers):
    if write_key is not None:
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        headers["HTTP_AUTHORIZATION"] = f"Basic {token}"
    data = raw if raw is not None else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers)


def track(**fields):
    return {"userId": "u1", "event": "Signed Up", **fields}


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
def test_each_call_is_stored_with_its_type(api_client, source, call):
    body = {"userId": "u1", "event": "E", "groupId": "g1", "previousId": "anon-1"}
    response = post(api_client, f"/v1/{call}", body, write_key=source.write_key)
    assert response.status_code == 200, response.json()
    assert response.json()["success"] is True
    event = Event.objects.get()
    assert event.type == call
    assert event.payload["type"] == call
    assert event.workspace == source.workspace
    assert event.source == source


def test_write_key_in_body_is_accepted(api_client, source):
    response = post(api_client, "/v1/track", track(writeKey=source.write_key))
    assert response.status_code == 200
    assert "writeKey" not in Event.objects.get().payload


def test_missing_write_key_is_401(api_client, source):
    response = post(api_client, "/v1/track", track())
    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"
    assert "write key" in response.json()["message"]


def test_unknown_write_key_is_401(api_client, source):
    response = post(api_client, "/v1/track", track(), write_key="nope")
    assert response.status_code == 401
    assert response.json() == {"code": "invalid_write_key", "message": "Unknown write key."}


def test_disabled_source_is_403(api_client, source):
    source.enabled = False
    source.save()
    response = post(api_client, "/v1/track", track(), write_key=source.write_key)
    assert response.status_code == 403
    assert response.json()["code"] == "source_disabled"
    assert not Event.objects.exists()


def test_body_that_is_not_json_is_400(api_client, source):
    response = post(api_client, "/v1/track", None, raw="{not json", write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_gzip_body_is_accepted(api_client, source):
    raw = gzip.compress(json.dumps(track()).encode())
    response = post(
        api_client,
        "/v1/track",
        None,
        raw=raw,
        write_key=source.write_key,
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200, response.json()
    assert Event.objects.get().event == "Signed Up"


def test_gzip_bomb_is_refused_by_decompressed_size(api_client, source):
    body = track(properties={"padding": "x" * 600_000})
    raw = gzip.compress(json.dumps({"batch": [body]}).encode())
    assert len(raw) < 10_000
    response = post(
        api_client,
        "/v1/batch",
        None,
        raw=raw,
        write_key=source.write_key,
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 413
    assert "500 KB" in response.json()["message"]


def test_corrupt_gzip_is_400(api_client, source):
    response = post(
        api_client,
        "/v1/track",
        None,
        raw=b"\x1f\x8b not really gzip",
        write_key=source.write_key,
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_gzip"


def test_unknown_content_encoding_is_415(api_client, source):
    response = post(
        api_client, "/v1/track", track(), write_key=source.write_key, HTTP_CONTENT_ENCODING="br"
    )
    assert response.status_code == 415


def test_message_over_32_kb_is_413(api_client, source):
    body = track(properties={"padding": "x" * 33_000})
    response = post(api_client, "/v1/track", body, write_key=source.write_key)
    assert response.status_code == 413
    assert "32 KB" in response.json()["message"]


def test_batch_over_500_kb_is_413(api_client, source):
    item = track(properties={"padding": "x" * 20_000})
    response = post(api_client, "/v1/batch", {"batch": [item] * 30}, write_key=source.write_key)
    assert response.status_code == 413
    assert "500 KB" in response.json()["message"]


def test_batch_over_2500_messages_is_400(api_client, source):
    items = [{"type": "track", "userId": "u", "event": "e"}] * 2501
    response = post(api_client, "/v1/batch", {"batch": items}, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert "2500" in response.json()["message"]


def test_batch_message_over_32_kb_is_reported_and_others_kept(api_client, source):
    big = {"type": "track", **track(properties={"padding": "x" * 33_000})}
    small = {"type": "track", **track()}
    response = post(api_client, "/v1/batch", {"batch": [small, big]}, write_key=source.write_key)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.json()["errors"] == [
        {"index": 1, "code": "message_too_large", "message": "the message exceeds the 32 KB limit"}
    ]


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/track", {"event": "E"}, "no_user_anon_id"),
        ("/v1/track", {"event": "E", "userId": None, "anonymousId": None}, "no_user_anon_id"),
        ("/v1/track", {"userId": "u1"}, "missing_event"),
        ("/v1/track", {"userId": "u1", "event": ""}, "missing_event"),
        ("/v1/group", {"userId": "u1"}, "missing_group_id"),
        ("/v1/alias", {"userId": "u1"}, "missing_alias_ids"),
        ("/v1/alias", {"previousId": "a1", "anonymousId": "x"}, "missing_alias_ids"),
        ("/v1/track", {"userId": {"a": 1}, "event": "E"}, "invalid_identifier"),
        ("/v1/track", {"userId": "u", "event": "E", "timestamp": "yesterday"}, "invalid_timestamp"),
        ("/v1/track", {"userId": "u", "event": "E", "messageId": "m" * 101}, "message_id_too_long"),
        ("/v1/track", {"userId": "u", "event": "E", "context": "web"}, "invalid_context"),
        ("/v1/track", ["not", "an", "object"], "invalid_message"),
    ],
)
def test_invalid_single_message_is_400_with_code(api_client, source, path, body, code):
    response = post(api_client, path, body, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert not Event.objects.exists()


def test_unknown_type_in_batch_is_reported(api_client, source):
    batch = [{"type": "delete", "userId": "u"}, {"type": "identify", "userId": "u"}]
    response = post(api_client, "/v1/batch", {"batch": batch}, write_key=source.write_key)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.json()["errors"][0]["index"] == 0
    assert response.json()["errors"][0]["code"] == "invalid_type"


def test_batch_without_valid_message_is_400_with_errors(api_client, source):
    batch = [{"type": "track", "userId": "u"}, {"type": "identify"}]
    response = post(api_client, "/v1/batch", {"batch": batch}, write_key=source.write_key)
    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]


@pytest.mark.parametrize("body", [{"batch": "nope"}, {"messages": []}, [1, 2]])
def test_malformed_batch_is_400(api_client, source, body):
    response = post(api_client, "/v1/batch", body, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"
    assert Event.objects.count() == 0


def test_empty_batch_is_400(api_client, source):
    response = post(api_client, "/v1/batch", {"batch": []}, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "empty_batch"


def test_server_fills_message_id_and_received_at(api_client, source):
    post(api_client, "/v1/track", track(), write_key=source.write_key)
    event = Event.objects.get()
    assert uuid.UUID(event.message_id)
    assert event.payload["messageId"] == event.message_id
    assert event.payload["receivedAt"].endswith("Z")


def test_timestamp_is_corrected_with_sent_at(api_client, source):
    body = track(timestamp="2024-01-01T00:00:00Z", sentAt="2024-01-01T00:00:10Z")
    post(api_client, "/v1/track", body, write_key=source.write_key)
    event = Event.objects.get()
    # The client's clock: the event happened 10 s before it was sent.
    assert (event.received_at - event.timestamp).total_seconds() == pytest.approx(10, abs=0.002)
    assert event.payload["originalTimestamp"] == "2024-01-01T00:00:00Z"


def test_batch_sent_at_and_context_and_integrations_are_merged(api_client, source):
    body = {
        "batch": [
            {"type": "track", **track(timestamp="2024-01-01T00:00:00Z", context={"ip": "1.2.3.4"})},
            {"type": "identify", "userId": "u2", "integrations": {"ChurnZero": False}},
        ],
        "sentAt": "2024-01-01T00:01:00Z",
        "context": {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"},
        "integrations": {"All": True},
    }
    post(api_client, "/v1/batch", body, write_key=source.write_key)
    first, second = Event.objects.order_by("type").reverse()
    assert first.payload["context"] == {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"}
    assert first.payload["integrations"] == {"All": True}
    assert (first.received_at - first.timestamp).total_seconds() == pytest.approx(60, abs=0.002)
    assert second.payload["integrations"] == {"All": True, "ChurnZero": False}


def test_duplicate_message_id_is_acknowledged_and_not_stored_again(
    api_client, source, webhook_integration
):
    body = track(messageId="m-1")
    first = post(api_client, "/v1/track", body, write_key=source.write_key)
    second = post(api_client, "/v1/track", body, write_key=source.write_key)
    assert first.json() == {"success": True, "duplicate": False}
    assert second.status_code == 200
    assert second.json() == {"success": True, "duplicate": True}
    assert Event.objects.count() == 1
    assert RoutingJob.objects.count() == 1  # routed (and delivered) once


def test_duplicates_within_and_across_batches(api_client, source, webhook_integration):
    items = [{"type": "track", **track(messageId=f"m-{i % 3}")} for i in range(5)]
    response = post(api_client, "/v1/batch", {"batch": items}, write_key=source.write_key)
    assert response.json()["accepted"] == 3
    assert response.json()["duplicates"] == 2
    again = post(api_client, "/v1/batch", {"batch": items[:2]}, write_key=source.write_key)
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 2
    assert Event.objects.count() == 3
    assert [len(job.entries) for job in RoutingJob.objects.all()] == [3]


def test_same_message_id_in_another_workspace_is_a_new_event(api_client, source):
    other = Source.objects.create(
        workspace=Workspace.objects.create(name="Other", slug="other"), name="S"
    )
    post(api_client, "/v1/track", track(messageId="m-1"), write_key=source.write_key)
    response = post(api_client, "/v1/track", track(messageId="m-1"), write_key=other.write_key)
    assert response.json()["duplicate"] is False
    assert Event.objects.count() == 2


def test_a_200_means_the_events_and_their_routing_job_are_committed(
    api_client, source, webhook_integration, django_capture_on_commit_callbacks
):
    """Nothing else happens in the request: no delivery row, no task, no callback."""
    items = [{"type": "track", **track()} for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(api_client, "/v1/batch", {"batch": items}, write_key=source.write_key)
    assert response.status_code == 200
    assert callbacks == []
    assert not DBTaskResult.objects.exists()
    assert not Delivery.objects.exists()
    (job,) = RoutingJob.objects.all()
    events = Event.objects.order_by("received_at", "pk")
    assert sorted(entry[0] for entry in job.entries) == sorted(str(e.pk) for e in events)
    # The router turns the job into the integration's dispatch and its task.
    route()
    (dispatch,) = Dispatch.objects.filter(integration=webhook_integration)
    assert dispatch.size == 3
    task = DBTaskResult.objects.get()
    assert task.task_path == "integrations.delivery.tasks.deliver_dispatches"
    assert task.args_kwargs["args"][:2] == [webhook_integration.pk, [dispatch.pk]]


def test_trailing_slash_and_method_not_allowed(api_client, source):
    assert post(api_client, "/v1/track/", track(), write_key=source.write_key).status_code == 200
    response = api_client.get("/v1/track")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(("escaped", "what"), [("a\\u0000b", "NUL"), ("\\ud800", "surrogate")])
def test_unstorable_strings_are_400_not_500(api_client, source, escaped, what):
    raw = '{"userId": "u1", "event": "E", "properties": {"x": "' + escaped + '"}}'
    response = post(api_client, "/v1/track", None, raw=raw, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_string"
    assert what in response.json()["message"]


@pytest.mark.parametrize(("escaped", "what"), [("a\\u0000b", "NUL"), ("\\ud800", "surrogate")])
def test_an_unstorable_message_in_a_batch_costs_only_itself(api_client, source, escaped, what):
    bad = '{"type": "track", "userId": "u1", "event": "E", "properties": {"x": "' + escaped + '"}}'
    good = json.dumps({"type": "track", "userId": "u2", "event": "E", "messageId": "ok-1"})
    raw = '{"batch": [' + good + ", " + bad + "]}"
    response = post(api_client, "/v1/batch", None, raw=raw, write_key=source.write_key)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    [error] = body["errors"]
    assert (error["index"], error["code"]) == (1, "invalid_string")
    assert what in error["message"]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["ok-1"]


def test_an_unstorable_batch_context_refuses_the_batch(api_client, source):
    message = json.dumps({"type": "track", "userId": "u2", "event": "E"})
    raw = '{"context": {"ip": "a\\u0000"}, "batch": [' + message + "]}"
    response = post(api_client, "/v1/batch", None, raw=raw, write_key=source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_string"
    assert not Event.objects.exists()


def test_a_nul_in_the_write_key_is_an_unknown_key(api_client, source):
    raw = '{"writeKey": "k\\u0000", "userId": "u1", "event": "E"}'
    assert post(api_client, "/v1/track", None, raw=raw).status_code == 400
    response = post(api_client, "/v1/track", track(), write_key="k\x00")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"


def test_escaped_emoji_is_fine(api_client, source):
    raw = '{"userId": "u1", "event": "E", "properties": {"x": "\\ud83d\\ude00"}}'
    response = post(api_client, "/v1/track", None, raw=raw, write_key=source.write_key)
    assert response.status_code == 200
    assert Event.objects.get().payload["properties"]["x"] == "\U0001f600"
