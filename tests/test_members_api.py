"""The members API: ``/api/v1/workspaces/<slug>/members/``, ``{username, role}``."""

import pytest
from rest_framework.test import APIClient

from integrations.models import Workspace, WorkspaceMembership
from tests.test_config_api import assert_error

Role = WorkspaceMembership.Role
MEMBERS = "/api/v1/workspaces/acme/members/"


@pytest.fixture
def admin_(member_client) -> APIClient:
    return member_client(Role.ADMIN, "boss")


@pytest.fixture
def newbie(django_user_model):
    return django_user_model.objects.create_user(username="jane.doe@example.com")


def usernames_and_roles(client: APIClient, url: str = MEMBERS) -> list[tuple[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [(m["username"], m["role"]) for m in response.json()["results"]]


@pytest.mark.parametrize("role", Role.values)
def test_members_list_the_members(member_client, role):
    client = member_client(role, "me")
    assert usernames_and_roles(client) == [("me", role)]
    body = client.get(f"{MEMBERS}me/").json()
    assert set(body) == {"username", "role", "created_at"}


def test_other_workspaces_members_are_not_reachable(admin_, newbie, db):
    other = Workspace.objects.create(name="Globex", slug="globex")
    WorkspaceMembership.objects.create(user=newbie, workspace=other)
    url = "/api/v1/workspaces/globex/members/"
    assert_error(admin_.get(url), 404, "not_found")
    assert_error(admin_.post(url, {"username": "boss", "role": "admin"}), 404, "not_found")
    assert_error(admin_.delete(f"{url}{newbie.username}/"), 404, "not_found")
    assert WorkspaceMembership.objects.filter(workspace=other).count() == 1


def test_admin_adds_changes_and_removes_members(admin_, newbie):
    response = admin_.post(MEMBERS, {"username": newbie.username, "role": "viewer"})
    assert response.status_code == 201, response.content
    assert response.json()["username"] == newbie.username
    detail = f"{MEMBERS}{newbie.username}/"
    assert admin_.patch(detail, {"role": "csm"}).json()["role"] == "csm"
    assert admin_.put(detail, {"username": newbie.username, "role": "admin"}).status_code == 200
    assert ("jane.doe@example.com", "admin") in usernames_and_roles(admin_)
    assert admin_.delete(detail).status_code == 204
    assert usernames_and_roles(admin_) == [("boss", "admin")]


def test_role_defaults_to_csm(admin_, newbie):
    response = admin_.post(MEMBERS, {"username": newbie.username})
    assert response.json()["role"] == "csm"


def test_unknown_user_is_a_clear_400(admin_):
    body = assert_error(admin_.post(MEMBERS, {"username": "ghost", "role": "csm"}), 400, "invalid")
    assert body["errors"]["username"] == ["no user is called “ghost”; a superuser creates accounts"]


def test_invalid_requests(admin_, newbie):
    admin_.post(MEMBERS, {"username": newbie.username})
    body = assert_error(admin_.post(MEMBERS, {"username": newbie.username}), 409, "already_member")
    assert "already a member of this workspace" in body["message"]
    body = assert_error(
        admin_.post(MEMBERS, {"username": "boss2", "role": "owner"}), 400, "invalid"
    )
    assert "role" in body["errors"]
    assert "username" in assert_error(admin_.post(MEMBERS, {}), 400, "invalid")["errors"]
    detail = f"{MEMBERS}{newbie.username}/"
    body = assert_error(admin_.patch(detail, {"username": "boss"}), 400, "invalid")
    assert "cannot change" in body["errors"]["username"][0]
    assert_error(admin_.get(f"{MEMBERS}nobody/"), 404, "not_found")


@pytest.mark.parametrize("role", [Role.CSM, Role.VIEWER])
def test_csms_and_viewers_cannot_manage_members(member_client, newbie, role):
    client = member_client(role, "me")
    WorkspaceMembership.objects.create(
        user=newbie, workspace=Workspace.objects.get(slug="acme"), role=Role.ADMIN
    )
    detail = f"{MEMBERS}{newbie.username}/"
    for response in [
        client.post(MEMBERS, {"username": newbie.username, "role": "csm"}),
        client.patch(detail, {"role": "viewer"}),
        client.patch(f"{MEMBERS}me/", {"role": "admin"}),
        client.delete(detail),
    ]:
        assert_error(response, 403, "permission_denied")
    assert usernames_and_roles(client) == [("jane.doe@example.com", "admin"), ("me", role)]


def test_the_last_admin_stays(admin_, newbie):
    detail = f"{MEMBERS}boss/"
    body = assert_error(admin_.patch(detail, {"role": "csm"}), 409, "last_admin")
    assert "at least one admin" in body["message"]
    assert_error(admin_.delete(detail), 409, "last_admin")
    # With a second admin, one of them may step down, not both.
    admin_.post(MEMBERS, {"username": newbie.username, "role": "admin"})
    assert admin_.patch(detail, {"role": "csm"}).status_code == 200
    other = APIClient()
    other.force_authenticate(newbie)
    assert_error(other.delete(f"{MEMBERS}{newbie.username}/"), 409, "last_admin")
    assert usernames_and_roles(other) == [("boss", "csm"), ("jane.doe@example.com", "admin")]


def test_superusers_manage_members_of_any_workspace(django_user_model, newbie, workspace):
    root = APIClient()
    root.force_authenticate(django_user_model.objects.create_superuser(username="root"))
    response = root.post(MEMBERS, {"username": newbie.username, "role": "admin"})
    assert response.status_code == 201, response.content
    assert usernames_and_roles(root) == [("jane.doe@example.com", "admin")]
