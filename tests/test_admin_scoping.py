"""Workspace scoping of the admin: a CSM sees and changes only their workspaces.

Three workspaces, each with one of everything, every name carrying the workspace's marker:
A (alphamark), where ``csm`` is a CSM, ``viewer`` a viewer and ``wsadmin`` an admin; B
(bravomark), where none of them is a member; C (charliemark), where ``csm`` is a viewer.
Every model registered in the app's admin is checked (a new one is covered by the
parametrisation and must get an object per workspace in ``populate``).
"""

import csv
import io
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django_tasks_db.models import DBTaskResult
from rest_framework.authtoken.models import Token, TokenProxy

from integrations.admin.scoping import (
    WorkspaceScopedAdmin,
    WorkspaceScopedInlineMixin,
    in_workspaces,
)
from integrations.models import (
    AlertIncident,
    AlertRule,
    DeletionRequest,
    DeletionTarget,
    Delivery,
    DeliveryAttempt,
    Event,
    EventRule,
    Exchange,
    Integration,
    PropertyRule,
    RejectedCall,
    Source,
    Workspace,
    WorkspaceMembership,
)
from tests.test_admin import admin_url, management_data

Role = WorkspaceMembership.Role
MODELS = [m for m in admin.site._registry if m._meta.app_label == "integrations"]
A, B, C = "alphamark", "bravomark", "charliemark"


def populate(tag: str, django_user_model) -> Workspace:
    """A workspace with one of everything, every name carrying ``tag``."""
    workspace = Workspace.objects.create(name=f"Workspace {tag}", slug=tag)
    member = django_user_model.objects.create_user(f"{tag}-member", is_staff=True)
    WorkspaceMembership.objects.create(user=member, workspace=workspace, role=Role.ADMIN)
    source = Source.objects.create(workspace=workspace, name=f"{tag} site")
    integration = Integration(workspace=workspace, name=f"{tag} hook", kind="webhook")
    integration.set_settings({"url": f"https://{tag}.example.com/in"})
    integration.save()
    EventRule.objects.create(integration=integration, event=f"{tag} event")
    PropertyRule.objects.create(integration=integration, name=f"{tag} prop")
    event = Event.objects.create(
        workspace=workspace,
        source=source,
        message_id=f"{tag}-msg",
        type=Event.Type.TRACK,
        event=f"{tag} event",
        user_id=f"{tag}-user",
        timestamp=datetime(2025, 1, 2, tzinfo=UTC),
        payload={"event": f"{tag} event"},
    )
    exchange = Exchange.objects.create(
        integration=integration,
        method="POST",
        url=f"https://{tag}.example.com/in",
        response_status=500,
        response_body=f"{tag} answer",
    )
    delivery = Delivery.objects.create(
        event=event,
        integration=integration,
        status="failed",
        last_outcome="failed",
        attempt_count=2,
        last_error=f"{tag} error",
        exchange=exchange,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, number=1, outcome="retry", error=f"{tag} error", exchange=exchange
    )
    alert_rule = AlertRule.objects.create(
        workspace=workspace,
        name=f"{tag} alert",
        channel=AlertRule.Channel.EMAIL,
        target=f"{tag}@example.com",
        condition=AlertRule.Condition.BACKLOG_AGE,
        threshold=30,
    )
    opened = datetime(2025, 1, 2, tzinfo=UTC)
    AlertIncident.objects.create(
        rule=alert_rule,
        integration=integration,
        opened_at=opened,
        last_seen_at=opened,
        detail=f"{tag} incident",
    )
    RejectedCall.objects.create(
        workspace=workspace,
        source=source,
        endpoint="/v1/track",
        status_code=400,
        code="invalid_message",
        message=f"{tag} rejected",
    )
    deletion = DeletionRequest.objects.create(
        workspace=workspace,
        user_id=f"{tag}-user",
        action=DeletionRequest.Action.DELETE,
        via=DeletionRequest.Via.API,
        message_id=f"{tag}-deletion",
    )
    DeletionTarget.objects.create(deletion=deletion, integration=integration, name=integration.name)
    return workspace


@pytest.fixture
def world(db, django_user_model) -> SimpleNamespace:
    a, b, c = (populate(tag, django_user_model) for tag in (A, B, C))
    users = {}
    for username, memberships in {
        "csm": [(a, Role.CSM), (c, Role.VIEWER)],
        "viewer": [(a, Role.VIEWER)],
        "wsadmin": [(a, Role.ADMIN)],
        "outsider": [],
    }.items():
        users[username] = django_user_model.objects.create_user(username, is_staff=True)
        for workspace, role in memberships:
            WorkspaceMembership.objects.create(user=users[username], workspace=workspace, role=role)
    users["root"] = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    return SimpleNamespace(a=a, b=b, c=c, users=users)


def login(world, username: str) -> Client:
    client = Client()
    client.force_login(world.users[username])
    return client


def objects_in(model, workspace: Workspace) -> list:
    path = admin.site._registry[model].workspace_path
    objects = list(model._default_manager.filter(**in_workspaces(path, {workspace.pk})))
    assert objects, f"populate() makes no {model.__name__} in {workspace}"
    return objects


def snapshot(model, workspace: Workspace) -> list[dict]:
    path = admin.site._registry[model].workspace_path
    return list(
        model._default_manager.filter(**in_workspaces(path, {workspace.pk})).order_by("pk").values()
    )


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def ids(model) -> str:
    return model.__name__


# --- every admin is scoped ------------------------------------------------------------


def test_every_admin_and_inline_of_the_app_is_scoped():
    assert MODELS
    for model in MODELS:
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, WorkspaceScopedAdmin), model
        for inline in model_admin.inlines:
            assert issubclass(inline, WorkspaceScopedInlineMixin), inline


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_csm_lists_only_their_workspaces(world, model):
    client = login(world, "csm")
    b_urls = [admin_url(model, "change", obj.pk) for obj in objects_in(model, world.b)]
    for params in [{}, {"q": "ravomark"}, {"q": B}, {"q": f"{B}-user"}, {"all": ""}]:
        text = page(client.get(admin_url(model), params))
        assert not any(url in text for url in b_urls), params
        # The search box repeats the query: anything else of B's is a leak.
        assert B not in text.replace(params.get("q", "-"), ""), params
    text = page(client.get(admin_url(model)))
    for obj in objects_in(model, world.a) + objects_in(model, world.c):
        assert admin_url(model, "change", obj.pk) in text


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_superuser_sees_every_workspace(world, model):
    text = page(login(world, "root").get(admin_url(model)))
    assert A in text and B in text and C in text


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_b_pages_are_out_of_reach(world, model):
    client = login(world, "csm")
    for obj in objects_in(model, world.b):
        for action in ("change", "history", "delete"):
            response = client.get(admin_url(model, action, obj.pk))
            assert response.status_code in (302, 403, 404), (action, response.status_code)
            assert B not in response.content.decode()
        response = client.post(admin_url(model, "delete", obj.pk), {"post": "yes"})
        assert response.status_code in (302, 403, 404)
    assert model._default_manager.filter(pk__in=[o.pk for o in objects_in(model, world.b)])


def autocomplete_sources(model) -> list[tuple[str, str, str]]:
    """Every (app, model, field) whose foreign key points at ``model``."""
    return [
        (field.model._meta.app_label, field.model._meta.model_name, field.name)
        for source in apps.get_models()
        for field in source._meta.fields
        if field.is_relation and field.related_model is model
    ]


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_autocomplete_never_offers_b(world, model):
    client = login(world, "csm")
    for app_label, model_name, field_name in autocomplete_sources(model):
        for term in ("", B, "mark"):
            response = client.get(
                "/admin/autocomplete/",
                {
                    "app_label": app_label,
                    "model_name": model_name,
                    "field_name": field_name,
                    "term": term,
                },
            )
            assert response.status_code in (200, 403, 404)
            assert B not in response.content.decode(), (model_name, field_name, term)


def test_autocomplete_offers_the_users_workspaces(world):
    response = login(world, "csm").get(
        "/admin/autocomplete/",
        {"app_label": "integrations", "model_name": "source", "field_name": "workspace"},
    )
    names = sorted(r["text"] for r in response.json()["results"])
    assert names == [f"Workspace {A}", f"Workspace {C}"]


def test_nobody_but_superusers_gets_a_list_of_users(world):
    query = {"app_label": "integrations", "model_name": "workspacemembership", "field_name": "user"}
    for username in ("csm", "wsadmin"):
        assert login(world, username).get("/admin/autocomplete/", query).status_code == 403
    assert login(world, "root").get("/admin/autocomplete/", query).status_code == 200


def test_list_filters_list_only_visible_objects(world):
    client = login(world, "csm")
    deliveries = page(client.get(admin_url(Delivery)))
    assert f"{A} hook" in deliveries and f"{C} hook" in deliveries  # the integration filter
    assert B not in deliveries
    events = page(client.get(admin_url(Event)))
    assert f"{A} site" in events and B not in events  # the source filter
    sources = page(client.get(admin_url(Source)))
    assert f"Workspace {C}" in sources and B not in sources  # the workspace filter


# --- actions and operator views -------------------------------------------------------


def action_names(world, model, username: str) -> list[str]:
    request = RequestFactory().get("/")
    request.user = world.users[username]
    return list(admin.site._registry[model].get_actions(request))


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_actions_never_touch_what_the_csm_may_not_change(
    world, model, django_capture_on_commit_callbacks
):
    """B's objects (not visible) and C's (visible: the CSM is a viewer there)."""
    client = login(world, "csm")
    before = {ws.pk: snapshot(model, ws) for ws in (world.b, world.c)}
    for name in action_names(world, model, "csm"):
        selected = [o.pk for ws in (world.b, world.c) for o in objects_in(model, ws)]
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                admin_url(model),
                {"action": name, "_selected_action": selected, "post": "yes"},
            )
            client.post(
                admin_url(model),
                {"action": name, "_selected_action": selected, "select_across": "1", "post": "yes"},
            )
    assert {ws.pk: snapshot(model, ws) for ws in (world.b, world.c)} == before
    assert not DBTaskResult.objects.exists()


def test_csm_actions_work_in_their_workspace(world, django_capture_on_commit_callbacks):
    client = login(world, "csm")
    delivery = objects_in(Delivery, world.a)[0]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            admin_url(Delivery),
            {"action": "retry_selected", "_selected_action": [delivery.pk]},
        )
    assert DBTaskResult.objects.count() == 1
    source = objects_in(Source, world.a)[0]
    client.post(
        admin_url(Source),
        {"action": "regenerate_keys", "_selected_action": [source.pk], "post": "yes"},
    )
    source_after = Source.objects.get(pk=source.pk)
    assert source_after.write_key != source.write_key


def test_operator_views_refuse_other_workspaces(world, django_capture_on_commit_callbacks):
    client = login(world, "csm")
    for workspace, status in [(world.b, 404), (world.c, 403)]:
        integration = objects_in(Integration, workspace)[0]
        for view in ("pause", "resume", "recover", "replay"):
            url = f"/admin/integrations/integration/{integration.pk}/{view}/"
            assert client.get(url).status_code == status, (workspace, view)
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(url, {"since": "2020-01-01 00:00", "until": "2030-01-01"})
            assert response.status_code == status, (workspace, view)
        assert not Integration.objects.get(pk=integration.pk).paused
    b_delivery = objects_in(Delivery, world.b)[0]
    c_delivery = objects_in(Delivery, world.c)[0]
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            client.post(f"/admin/integrations/delivery/{b_delivery.pk}/retry/").status_code == 404
        )
        response = client.post(f"/admin/integrations/delivery/{c_delivery.pk}/retry/", follow=True)
    assert "Retrying needs a POST by a CSM" in response.content.decode()
    assert not DBTaskResult.objects.exists()
    # Nor does a viewer get the buttons.
    text = page(client.get(admin_url(Delivery, "change", c_delivery.pk)))
    assert "Retry now" not in text
    text = page(
        client.get(admin_url(Integration, "change", objects_in(Integration, world.c)[0].pk))
    )
    assert "Replay…" not in text and "Delivery log" in text


# --- the CSV export -------------------------------------------------------------------


def export(client: Client, selected: list, **extra: str) -> list[list[str]]:
    response = client.post(
        admin_url(Delivery), {"action": "export_csv", "_selected_action": selected, **extra}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_export_is_scoped(world):
    every = list(Delivery.objects.values_list("pk", flat=True))
    for username in ("csm", "viewer"):
        rows = export(login(world, username), every, select_across="1")
        text = repr(rows)
        assert B not in text
        assert A in text
    rows = export(login(world, "csm"), [o.pk for o in objects_in(Delivery, world.b)])
    assert len(rows) == 1  # the header alone


def test_export_columns(world):
    rows = export(login(world, "viewer"), [objects_in(Delivery, world.a)[0].pk])
    assert rows[0] == [
        "time",
        "workspace",
        "integration",
        "event",
        "user",
        "status",
        "attempts",
        "last_http_status",
        "last_error",
        "latency_ms",
    ]
    assert rows[1][1:] == [
        f"Workspace {A}",
        f"{A} hook",
        f"{A} event",
        f"{A}-user",
        "failed",
        "2",
        "",
        f"{A} error",
        "",
    ]


def test_export_neutralises_spreadsheet_formulas(world):
    Event.objects.filter(message_id=f"{A}-msg").update(event="=HYPERLINK(1)", user_id="@me")
    rows = export(login(world, "csm"), [objects_in(Delivery, world.a)[0].pk])
    assert rows[1][3:5] == ["'=HYPERLINK(1)", "'@me"]


# --- viewers, and writing into another workspace --------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_viewer_reads_but_cannot_change(world, model):
    client = login(world, "viewer")
    before = snapshot(model, world.a)
    for obj in objects_in(model, world.a):
        text = page(client.get(admin_url(model, "change", obj.pk)))
        assert 'name="_save"' not in text
        assert client.post(admin_url(model, "change", obj.pk), {"name": "x"}).status_code == 403
        assert client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert client.get(admin_url(model, "add")).status_code == 403
    for name in action_names(world, model, "viewer"):
        selected = [o.pk for o in objects_in(model, world.a)]
        client.post(admin_url(model), {"action": name, "_selected_action": selected, "post": "yes"})
    assert snapshot(model, world.a) == before


def test_viewer_reads_the_integration_settings_but_not_its_secrets(world):
    integration = objects_in(Integration, world.a)[0]
    text = page(login(world, "viewer").get(admin_url(Integration, "change", integration.pk)))
    assert f"https://{A}.example.com/in" in text
    assert "(set)" in text  # the signing secret
    assert integration.secret_settings["secret"] not in text
    assert 'name="setting__url"' not in text


def test_viewer_sees_only_read_actions(world):
    assert action_names(world, Delivery, "viewer") == ["export_csv"]
    assert action_names(world, Source, "viewer") == []
    assert "retry_selected" in action_names(world, Delivery, "csm")


@pytest.mark.parametrize("workspace_attr", ["b", "c"])
def test_csm_cannot_create_or_move_objects_into_another_workspace(world, workspace_attr):
    client = login(world, "csm")
    target = getattr(world, workspace_attr)
    data = {"workspace": target.pk, "name": "Intruder", "kind": "segment", "enabled": "on"}
    text = page(client.post(admin_url(Source, "add"), data))
    assert "Select a valid choice" in text
    add = "/admin/integrations/integration/add/"
    form = page(client.get(add, {"kind": "webhook"}))
    data = {**management_data(form), "workspace": target.pk, "name": "Intruder"}
    data.update({"event_mode": "all", "setting__url": "https://x.example.com"})
    assert "Select a valid choice" in page(client.post(f"{add}?kind=webhook", data))
    source = objects_in(Source, world.a)[0]
    data = {"workspace": target.pk, "name": "Moved", "kind": "segment", "enabled": "on"}
    assert "Select a valid choice" in page(
        client.post(admin_url(Source, "change", source.pk), data)
    )
    assert not Source.objects.filter(name__in=["Intruder", "Moved"]).exists()
    assert not Integration.objects.filter(name="Intruder").exists()
    # The workspace choices are those the CSM may write to.
    choices = re.findall(r'<option value="(\d+)"', page(client.get(admin_url(Source, "add"))))
    assert choices == [str(world.a.pk)]


def test_csm_creates_in_their_workspace(world):
    data = {"workspace": world.a.pk, "name": "New site", "kind": "segment", "enabled": "on"}
    assert login(world, "csm").post(admin_url(Source, "add"), data).status_code == 200  # keys
    assert Source.objects.get(name="New site").workspace == world.a


def test_non_member_staff_see_nothing(world):
    client = login(world, "outsider")
    assert "Workspace" not in page(client.get("/admin/"))
    for model in MODELS:
        assert client.get(admin_url(model)).status_code == 403
    assert client.get("/admin/integrations/").status_code == 404
    assert client.get("/admin/integrations/audit-trail/").status_code == 403


# --- workspaces and memberships -------------------------------------------------------


def test_only_workspace_admins_change_a_workspace(world):
    csm, wsadmin = login(world, "csm"), login(world, "wsadmin")
    text = page(csm.get(admin_url(Workspace, "change", world.a.pk)))
    assert 'name="_save"' not in text
    assert f"{A}-member" in text  # members are listed to members
    text = page(wsadmin.get(admin_url(Workspace, "change", world.a.pk)))
    data = {**management_data(text), "name": "Renamed", "slug": world.a.slug}
    assert wsadmin.post(admin_url(Workspace, "change", world.a.pk), data).status_code == 302
    assert Workspace.objects.get(pk=world.a.pk).name == "Renamed"
    for client in (csm, wsadmin):
        assert client.get(admin_url(Workspace, "add")).status_code == 403
        assert client.get(admin_url(Workspace, "delete", world.a.pk)).status_code == 403


def test_staff_given_the_permission_create_workspaces_and_become_their_admin(world):
    user = world.users["outsider"]
    user.user_permissions.add(Permission.objects.get(codename="add_workspace"))
    client = login(world, "outsider")
    text = page(client.get(admin_url(Workspace, "add")))
    data = {**management_data(text), "name": "Delta", "slug": "delta"}
    assert client.post(admin_url(Workspace, "add"), data).status_code == 302
    membership = WorkspaceMembership.objects.get(workspace__slug="delta")
    assert (membership.user, membership.role) == (user, Role.ADMIN)


def membership_data(workspace: Workspace, username: str, role: str = Role.CSM) -> dict:
    return {"username": username, "workspace": workspace.pk, "role": role}


def test_workspace_admin_adds_members_by_username(world, django_user_model):
    django_user_model.objects.create_user("newbie")
    client = login(world, "wsadmin")
    text = page(client.get(admin_url(WorkspaceMembership, "add")))
    assert re.findall(r'<option value="(\d+)"', text) == [str(world.a.pk)]
    assert "newbie" not in text  # no list of users
    response = client.post(
        admin_url(WorkspaceMembership, "add"), membership_data(world.a, "newbie")
    )
    assert response.status_code == 302
    assert WorkspaceMembership.objects.get(user__username="newbie").workspace == world.a
    text = page(
        client.post(admin_url(WorkspaceMembership, "add"), membership_data(world.a, "nobody"))
    )
    assert "No user is called “nobody”" in text
    text = page(
        client.post(admin_url(WorkspaceMembership, "add"), membership_data(world.a, "newbie"))
    )
    assert "already a member" in text
    text = page(
        client.post(admin_url(WorkspaceMembership, "add"), membership_data(world.b, "viewer"))
    )
    assert "Select a valid choice" in text
    assert not WorkspaceMembership.objects.filter(workspace=world.b, user__username="viewer")


def test_csm_cannot_manage_members(world):
    client = login(world, "csm")
    assert client.get(admin_url(WorkspaceMembership, "add")).status_code == 403
    membership = WorkspaceMembership.objects.get(user__username="viewer")
    data = {"role": Role.ADMIN}
    assert client.post(admin_url(WorkspaceMembership, "change", membership.pk), data).status_code
    assert WorkspaceMembership.objects.get(pk=membership.pk).role == Role.VIEWER


def test_members_are_added_inline_by_username(world, django_user_model):
    django_user_model.objects.create_user("newbie")
    client = login(world, "wsadmin")
    url = admin_url(Workspace, "change", world.a.pk)
    text = page(client.get(url))
    data = {
        "name": world.a.name,
        "slug": world.a.slug,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-username": "ghost",
        "memberships-0-role": Role.VIEWER,
    }
    assert "memberships-TOTAL_FORMS" in text
    assert "No user is called “ghost”" in page(client.post(url, data))
    data["memberships-0-username"] = "newbie"
    assert client.post(url, data).status_code == 302
    assert WorkspaceMembership.objects.get(user__username="newbie").role == Role.VIEWER


def only_admin(world) -> WorkspaceMembership:
    """Leave wsadmin the only admin of A."""
    WorkspaceMembership.objects.filter(user__username=f"{A}-member").delete()
    return WorkspaceMembership.objects.get(user__username="wsadmin")


def test_the_last_admin_can_be_neither_demoted_nor_removed(world):
    membership = only_admin(world)
    client = login(world, "wsadmin")
    url = admin_url(WorkspaceMembership, "change", membership.pk)
    text = page(client.post(url, membership_data(world.a, "wsadmin", Role.CSM)))
    assert "must keep at least one admin" in text
    assert client.get(admin_url(WorkspaceMembership, "delete", membership.pk)).status_code == 403
    assert WorkspaceMembership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_the_last_admin_is_kept_inline_too(world):
    membership = only_admin(world)
    client = login(world, "wsadmin")
    url = admin_url(Workspace, "change", world.a.pk)
    text = page(client.get(url))
    forms = dict(re.findall(r'name="(memberships-\d+-id)" value="(\d+)"', text))
    data = {"name": world.a.name, "slug": world.a.slug}
    data.update({k: v for k, v in forms.items()})
    data.update(
        {
            "memberships-TOTAL_FORMS": str(len(forms)),
            "memberships-INITIAL_FORMS": str(len(forms)),
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        }
    )
    members = {int(v): k.removesuffix("-id") for k, v in forms.items()}
    for pk, prefix in members.items():
        data[f"{prefix}-role"] = WorkspaceMembership.objects.get(pk=pk).role
    data[f"{members[membership.pk]}-DELETE"] = "on"
    assert "must keep at least one admin" in page(client.post(url, data))
    # Promoting someone else in the same change makes it possible.
    other = next(pk for pk in members if pk != membership.pk)
    data[f"{members[other]}-role"] = Role.ADMIN
    assert client.post(url, data).status_code == 302
    assert not WorkspaceMembership.objects.filter(pk=membership.pk).exists()
    assert WorkspaceMembership.objects.get(pk=other).role == Role.ADMIN


# --- API tokens -----------------------------------------------------------------------


def test_api_tokens_are_for_superusers_and_shown_by_prefix(world):
    token = Token.objects.create(user=world.users["csm"])
    for username in ("csm", "wsadmin"):
        assert login(world, username).get(admin_url(TokenProxy)).status_code == 403
    root = login(world, "root")
    text = page(root.get(admin_url(TokenProxy)))
    assert token.key[:6] in text and token.key not in text
    assert root.get(admin_url(TokenProxy, "change", world.users["csm"].pk)).status_code == 403
    assert root.get(admin_url(TokenProxy, "add")).status_code == 403
    assert token.key not in page(root.get("/admin/"))
