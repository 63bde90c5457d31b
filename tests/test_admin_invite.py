"""Inviting a member on one screen: username or email, role and workspace (one the inviter
administers); a superuser may invite someone without an account yet."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from integrations.models import Workspace, WorkspaceMembership
from tests.admin_clients import member

Role = WorkspaceMembership.Role
INVITE = reverse("admin:integrations_workspacemembership_add")


@pytest.fixture
def ada(django_user_model, workspace) -> Client:
    """An admin of the ``workspace`` (not a superuser)."""
    return member(django_user_model, workspace, Role.ADMIN, "ada")


@pytest.fixture
def root(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.fixture
def elsewhere(django_user_model) -> Workspace:
    """A workspace where ada is only a CSM."""
    other = Workspace.objects.create(name="Globex", slug="globex")
    ada = django_user_model.objects.get(username="ada")
    WorkspaceMembership.objects.create(user=ada, workspace=other, role=Role.CSM)
    return other


def invite(client: Client, given: str, workspace: Workspace, role: str = Role.CSM):
    return client.post(INVITE, {"username": given, "workspace": workspace.pk, "role": role})


def test_the_invite_page_is_one_screen_of_the_administered_workspaces(ada, workspace, elsewhere):
    text = ada.get(INVITE).content.decode()
    assert "Invite a member" in text and "Username or email" in text
    assert 'name="role"' in text
    assert f'<option value="{workspace.pk}" selected>' in text  # the only one ada administers
    assert f'<option value="{elsewhere.pk}"' not in text
    changelist = ada.get(reverse("admin:integrations_workspacemembership_changelist"))
    assert "Invite a member" in changelist.content.decode()
    page = ada.get(reverse("admin:integrations_workspace_change", args=[workspace.pk]))
    assert f"{INVITE}?workspace={workspace.pk}" in page.content.decode()


def test_an_admin_invites_an_existing_account_by_email(ada, workspace, django_user_model):
    bob = django_user_model.objects.create_user("bob", email="Bob@Example.com")
    response = invite(ada, "bob@example.com", workspace, Role.VIEWER)
    assert response.status_code == 302
    membership = WorkspaceMembership.objects.get(user=bob)
    assert (membership.workspace, membership.role) == (workspace, Role.VIEWER)
    bob.refresh_from_db()
    assert bob.is_staff  # so that bob can log in to the console
    messages = [str(m) for m in ada.get(response.url).context["messages"]]
    assert messages == [
        "bob is now Viewer of Acme. They were given access to the console (a staff account) "
        "to log in."
    ]
    record = WorkspaceMembership.history.get(user=bob)
    assert record.history_user.username == "ada"


def test_an_admin_invites_by_username_only_into_their_workspaces(
    ada, workspace, elsewhere, django_user_model
):
    django_user_model.objects.create_user("bob", is_staff=True)
    text = invite(ada, "bob", elsewhere).content.decode()
    assert "Select a valid choice" in text
    assert invite(ada, "bob", workspace).status_code == 302
    assert list(WorkspaceMembership.objects.filter(user__username="bob")) == [
        WorkspaceMembership.objects.get(workspace=workspace, user__username="bob")
    ]


def test_an_admin_cannot_create_accounts(ada, workspace):
    text = invite(ada, "newcomer@example.com", workspace).content.decode()
    assert "No user is called “newcomer@example.com” and no account has this email" in text
    assert "a superuser creates accounts" in text
    assert not get_user_model().objects.filter(email="newcomer@example.com").exists()


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("twins", "Several accounts have this email"),
        ("inactive", "This account is deactivated"),
    ],
)
def test_unusable_accounts_are_refused(ada, workspace, django_user_model, setup, error):
    if setup == "twins":
        django_user_model.objects.create_user("one", email="same@example.com")
        django_user_model.objects.create_user("two", email="same@example.com")
        given = "same@example.com"
    else:
        django_user_model.objects.create_user("gone", is_active=False)
        given = "gone"
    assert error in invite(ada, given, workspace).content.decode()
    assert WorkspaceMembership.objects.filter(workspace=workspace).count() == 1  # ada only


def test_a_superuser_creates_the_account_of_a_newcomer(root, workspace):
    response = invite(root, "newcomer@example.com", workspace, Role.CSM)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert "Account created" in text and "shown once" in text
    user = get_user_model().objects.get(username="newcomer@example.com")
    assert (user.email, user.is_staff, user.is_superuser) == ("newcomer@example.com", True, False)
    password = text.split('<code id="new-password">', 1)[1].split("</code>", 1)[0]
    assert len(password) >= 16 and user.check_password(password)
    assert WorkspaceMembership.objects.get(user=user).role == Role.CSM
    # Not shown again: the members' pages never hold it.
    for url in (reverse("admin:integrations_workspacemembership_changelist"), INVITE):
        assert password not in root.get(url).content.decode()


def test_a_superuser_gets_a_clear_error_for_an_impossible_username(root, workspace):
    text = invite(root, "not a name!", workspace).content.decode()
    assert "Enter a valid username" in text
    assert not get_user_model().objects.filter(username="not a name!").exists()
