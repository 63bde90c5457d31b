"""Deletion and suppression requests: asked through the API or by a Segment Webhooks
delete notice, dispatched only to the integrations that take them, delivered like any
event (retries, the exchange log), followed per integration, in the audit trail."""

import datetime as dt
import hashlib
import hmac
import json

import pytest
import responses
from django.utils import timezone

from integrations import audit, deletion
from integrations.delivery import operations
from integrations.models import (
    DeletionRequest,
    DeletionTarget,
    Delivery,
    Dispatch,
    Event,
    EventRule,
    Integration,
    Workspace,
    WorkspaceMembership,
)
from tests.traffic import deliver_due, exchanges_of, send

Role = WorkspaceMembership.Role
Status = DeletionTarget.Status
State = DeletionRequest.State
CIO = "https://track.customer.io/api/v2/entity"
CM = "https://api.chartmogul.com/v1"


def make(workspace, kind: str, name: str, **settings) -> Integration:
    integration = Integration(workspace=workspace, name=name, kind=kind)
    integration.set_settings(settings)
    integration.save()
    return integration


@pytest.fixture
def vendors(workspace) -> dict[str, Integration]:
    """One integration of every kind; ChartMogul in both modes."""
    return {
        "customerio": make(workspace, "customerio", "Customer.io", site_id="s", api_key="k"),
        "chartmogul_rest": make(
            workspace,
            "chartmogul",
            "ChartMogul REST",
            mode="rest",
            api_key="cm_key",
            data_source_uuid="ds_1",
        ),
        "chartmogul_webhook": make(
            workspace,
            "chartmogul",
            "ChartMogul source",
            webhook_url="https://segment.chartmogul.example/hooks/abc",
        ),
        "churnzero": make(workspace, "churnzero", "ChurnZero", app_key="cz"),
        "segment": make(workspace, "segment", "Segment", write_key="wk"),
        "slack": make(
            workspace,
            "slack",
            "Slack",
            webhook_url="https://hooks.slack.com/services/T/B/x",
            default_template="{{ type }}",
        ),
        "webhook": make(workspace, "webhook", "Hook", url="https://hooks.example.com/in"),
    }


def url(workspace, pk=None) -> str:
    base = f"/api/v1/workspaces/{workspace.slug}/deletion-requests/"
    return f"{base}{pk}/" if pk else base


def ask(client, workspace, user_id="u1", action="delete"):
    return client.post(url(workspace), {"user_id": user_id, "action": action}, format="json")


# --- asking, and where it goes ---------------------------------------------------------


def test_a_request_goes_only_to_the_integrations_that_take_it(member_client, workspace, vendors):
    response = ask(member_client(), workspace)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["user_id"], body["action"], body["via"]) == ("u1", "delete", "api")
    assert body["requested_by"] == "csm" and body["state"] == State.IN_PROGRESS
    assert sorted(t["name"] for t in body["targets"]) == [
        "ChartMogul REST",
        "ChartMogul source",
        "Customer.io",
    ]
    assert {t["status"] for t in body["targets"]} == {Status.WAITING}
    # Dispatched at once, one per target; no other integration gets a thing.
    taken = {vendors[k].pk for k in ("customerio", "chartmogul_rest", "chartmogul_webhook")}
    assert set(Dispatch.objects.values_list("integration_id", flat=True)) == taken
    event = Event.objects.get()
    assert (event.type, event.user_id, event.message_id) == ("delete", "u1", body["message_id"])


def test_disabled_integrations_and_events_switched_off_get_nothing(
    member_client, workspace, vendors
):
    Integration.objects.filter(pk=vendors["chartmogul_rest"].pk).update(enabled=False)
    EventRule.objects.create(
        integration=vendors["chartmogul_webhook"], event="delete", enabled=False
    )
    deletion_request = ask(member_client(), workspace).json()
    assert [t["name"] for t in deletion_request["targets"]] == ["Customer.io"]


def test_without_an_integration_that_takes_it_the_request_says_so(member_client, workspace):
    make(workspace, "webhook", "Hook", url="https://hooks.example.com/in")
    body = ask(member_client(), workspace).json()
    assert (body["state"], body["targets"]) == (State.NO_INTEGRATION, [])
    assert not Dispatch.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "delete"}, "user_id"),
        ({"user_id": "  ", "action": "delete"}, "user_id"),
        ({"user_id": "u" * 256, "action": "delete"}, "user_id"),
        ({"user_id": 0, "action": "delete"}, "user_id"),
        ({"user_id": "u1\x00", "action": "delete"}, "user_id"),
        ({"user_id": "u1", "action": "forget"}, "action"),
        ({"user_id": "u1"}, "action"),
    ],
)
def test_bad_requests_are_a_400_naming_the_field(member_client, workspace, payload, field):
    response = member_client().post(url(workspace), payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not DeletionRequest.objects.exists()


def test_viewers_read_requests_and_may_not_ask(member_client, workspace):
    viewer = member_client(Role.VIEWER, username="viewer")
    assert ask(viewer, workspace).status_code == 403
    ask(member_client(), workspace, user_id="u9")
    listed = viewer.get(url(workspace)).json()["results"]
    assert [r["user_id"] for r in listed] == ["u9"]
    assert viewer.get(url(workspace), {"user_id": "nobody"}).json()["results"] == []


def test_other_workspaces_requests_are_not_seen(member_client, workspace):
    other = Workspace.objects.create(name="Other", slug="other")
    deletion.submit(
        other,
        deletion.deletion_message("delete", "u1", received_at=timezone.now()),
        via=DeletionRequest.Via.API,
    )
    client = member_client()
    assert client.get(url(workspace)).json()["results"] == []
    assert client.get(url(other)).status_code == 404


def test_the_audit_trail_records_who_asked_what_for_whom(member_client, workspace, vendors):
    ask(member_client(), workspace, user_id="user-42", action="suppress")
    rows = audit.describe(audit.changes([workspace.pk], kind="workspace"))
    record = next(change for change in rows if "Deletion" in change.reason)
    assert record.user == "csm" and record.action == ""
    assert "suppress user 'user-42'" in record.reason
    assert "at 3 integrations" in record.reason


# --- carried out -----------------------------------------------------------------------


@responses.activate
def test_each_integration_does_what_it_can_and_the_request_tells(
    member_client, source, workspace, vendors
):
    send(source, type="identify", userId="u1", traits={"email": "ada@acme.example"})
    send(source, type="group", userId="u1", groupId="acme", traits={"name": "Acme"})
    # Only the deletion is of interest here: the earlier calls are delivered first.
    responses.post(CIO, json={})
    responses.post("https://segment.chartmogul.example/hooks/abc", json={})
    responses.get(f"{CM}/customers", json={"entries": [{"uuid": "cus_1", "external_id": "acme"}]})
    responses.get(
        f"{CM}/customers/cus_1/contacts",
        json={"entries": [{"uuid": "con_1", "external_id": "u1"}], "has_more": False},
    )
    responses.patch(f"{CM}/customers/cus_1", json={})
    responses.patch(f"{CM}/contacts/con_1", json={})
    for kind in ("churnzero", "segment", "slack", "webhook"):
        Integration.objects.filter(pk=vendors[kind].pk).update(enabled=False)
    deliver_due()
    responses.calls.reset()
    responses.delete(f"{CM}/contacts/con_1", status=204)

    client = member_client()
    created = ask(client, workspace).json()
    deliver_due()

    event = Event.objects.get(type="delete")
    cio = Delivery.objects.get(event=event, integration=vendors["customerio"])
    assert json.loads(exchanges_of(cio)[0]["request_body"]) == {
        "type": "person",
        "identifiers": {"id": "u1"},
        "action": "delete",
    }
    rest = Delivery.objects.get(event=event, integration=vendors["chartmogul_rest"])
    assert [(e["method"], e["status"]) for e in exchanges_of(rest)] == [
        ("GET", 200),
        ("GET", 200),
        ("DELETE", 204),
    ]
    webhook_mode = Delivery.objects.get(event=event, integration=vendors["chartmogul_webhook"])
    assert webhook_mode.exchange is None
    assert not any("segment.chartmogul" in call.request.url for call in responses.calls)

    body = client.get(url(workspace, created["id"])).json()
    statuses = {t["name"]: (t["status"], t["detail"]) for t in body["targets"]}
    assert statuses["Customer.io"] == (Status.DONE, "")
    assert statuses["ChartMogul REST"] == (Status.DONE, "")
    status, detail = statuses["ChartMogul source"]
    assert status == Status.NOT_SUPPORTED
    assert "takes no deletions" in detail and "delete user 'u1'" in detail
    assert body["state"] == State.NEEDS_ATTENTION and body["settled_at"]


@responses.activate
def test_a_refused_deletion_is_retried_and_followed_as_the_worker_records_it(
    member_client, workspace, django_capture_on_commit_callbacks
):
    cio = make(workspace, "customerio", "Customer.io", site_id="s", api_key="k")
    responses.post(CIO, status=503)
    responses.post(CIO, json={})
    ask(member_client(), workspace, action="suppress")
    with django_capture_on_commit_callbacks(execute=True):  # the worker's signal
        deliver_due()
    # Refreshed by the worker's signal, without anyone reading the request.
    request = DeletionRequest.objects.get()
    (target,) = request.targets.all()
    assert (request.state, target.status) == (State.IN_PROGRESS, Status.RETRYING)
    assert "HTTP 503" in target.detail

    Delivery.objects.update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        deliver_due()
    request.refresh_from_db()
    (target,) = request.targets.all()
    assert (request.state, target.status, target.detail) == (State.DONE, Status.DONE, "")
    assert target.integration == cio
    sent = [json.loads(call.request.body) for call in responses.calls]
    assert all(op["action"] == "suppress" for op in sent) and len(sent) == 2


@responses.activate
def test_a_failed_deletion_needs_attention(
    member_client, workspace, django_capture_on_commit_callbacks
):
    make(workspace, "customerio", "Customer.io", site_id="s", api_key="bad")
    responses.post(CIO, status=401, json={"meta": {"error": "unauthorized"}})
    ask(member_client(), workspace)
    with django_capture_on_commit_callbacks(execute=True):
        deliver_due()
    request = DeletionRequest.objects.get()
    assert request.state == State.NEEDS_ATTENTION
    assert "HTTP 401" in request.targets.get().detail


def test_a_replay_sends_a_deletion_again_only_where_it_goes(member_client, workspace, vendors):
    created = ask(member_client(), workspace).json()
    Dispatch.objects.all().delete()
    now = timezone.now()
    for integration in vendors.values():
        operations.replay(integration, now - dt.timedelta(minutes=5), now)
    replayed = set(Dispatch.objects.values_list("integration__name", flat=True))
    assert replayed == {"Customer.io", "ChartMogul REST", "ChartMogul source"}
    assert created["message_id"]


# --- Segment's delete notices ------------------------------------------------------------


def sign(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def notify(client, source, notice: dict, secret: str | None = None):
    raw = json.dumps(notice).encode()
    return client.post(
        f"/hooks/segment/{source.webhook_token}/",
        data=raw,
        content_type="application/json",
        HTTP_X_SIGNATURE=sign(secret or source.webhook_secret, raw),
    )


# As Segment's Webhooks destination documents it, with the common fields a notice carries.
NOTICE = {
    "type": "delete",
    "userId": "019mr8mf4r",
    "messageId": "delete-notice-1",
    "timestamp": "2012-12-02T00:30:08.276Z",
    "context": {"library": {"name": "segment"}},
}


def test_a_signed_delete_notice_becomes_a_request_and_is_taken_once(api_client, source, vendors):
    response = notify(api_client, source, NOTICE)
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "duplicate": False}
    request = DeletionRequest.objects.get()
    assert (request.user_id, request.action, request.via) == (
        "019mr8mf4r",
        "delete",
        "segment_webhook",
    )
    assert (request.source, request.requested_by, request.message_id) == (
        source,
        None,
        "delete-notice-1",
    )
    assert request.targets.count() == 3
    assert request.event.payload["context"] == NOTICE["context"]
    assert request.event.timestamp.isoformat().startswith("2012-12-02T00:30:08")

    again = notify(api_client, source, NOTICE)
    assert again.json() == {"success": True, "duplicate": True}
    assert DeletionRequest.objects.count() == 1 and Dispatch.objects.count() == 3
    record = next(c for c in audit.describe(audit.changes(None)) if "Deletion" in c.reason)
    assert record.user == "" and "(Segment notice)" in record.reason


def test_a_notice_without_message_id_gets_a_stable_one(api_client, source):
    notice = {key: value for key, value in NOTICE.items() if key != "messageId"}
    assert notify(api_client, source, notice).json()["duplicate"] is False
    assert notify(api_client, source, notice).json()["duplicate"] is True
    assert DeletionRequest.objects.get().message_id.startswith("delete-")


@pytest.mark.parametrize(
    ("notice", "code"),
    [
        ({"type": "delete", "timestamp": "2012-12-02T00:30:08.276Z"}, "missing_user_id"),
        ({"type": "delete", "userId": {"id": 1}}, "missing_user_id"),
        ({"type": "delete", "userId": "u1", "timestamp": "yesterday"}, "invalid_timestamp"),
        ({"type": "delete", "userId": "u1", "context": "x"}, "invalid_context"),
        ({"type": "delete", "userId": "u1", "messageId": "m" * 101}, "message_id_too_long"),
        ({"type": "delete", "userId": "u\u0000"}, "invalid_string"),
    ],
)
def test_a_bad_notice_is_a_400_with_its_reason(api_client, source, notice, code):
    response = notify(api_client, source, notice)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not DeletionRequest.objects.exists()


def test_a_notice_signed_with_another_secret_is_refused(api_client, source):
    assert notify(api_client, source, NOTICE, secret="not-it").status_code == 401
    assert not DeletionRequest.objects.exists()


# --- the admin -------------------------------------------------------------------------


def test_the_admin_lists_requests_with_their_outcomes(csm, workspace, vendors):
    other = Workspace.objects.create(name="Other", slug="other")
    for space, user_id in ((workspace, "mine-1"), (other, "theirs-1")):
        deletion.submit(
            space,
            deletion.deletion_message("delete", user_id, received_at=timezone.now()),
            via=DeletionRequest.Via.API,
        )
    page = csm.get("/admin/integrations/deletionrequest/").content.decode()
    assert "mine-1" in page and "theirs-1" not in page
    mine = DeletionRequest.objects.get(user_id="mine-1")
    detail = csm.get(f"/admin/integrations/deletionrequest/{mine.pk}/change/").content.decode()
    assert "Customer.io" in detail and "Waiting" in detail


def test_only_outcomes_of_deletion_requests_refresh_them(workspace, monkeypatch):
    hook = make(workspace, "webhook", "Hook", url="https://hooks.example.com/in")
    refreshed = []
    monkeypatch.setattr(deletion, "refresh_for", refreshed.append)
    for types in ({"track", "identify"}, {"track", "delete"}, {"suppress"}):
        deletion.on_exchanges_recorded(
            None, integration=hook, answers=[(200, "")], event_types=frozenset(types)
        )
    assert refreshed == [hook, hook]
