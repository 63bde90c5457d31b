"""Admin test clients logged in as staff members of the ``workspace`` fixture."""

import pytest
from django.test import Client

from integrations.models import WorkspaceMembership

Role = WorkspaceMembership.Role


def member(django_user_model, workspace, role: str, username: str) -> Client:
    user = django_user_model.objects.create_user(username, is_staff=True)
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def csm(django_user_model, workspace) -> Client:
    return member(django_user_model, workspace, Role.CSM, "carla")


@pytest.fixture
def viewer(django_user_model, workspace) -> Client:
    return member(django_user_model, workspace, Role.VIEWER, "victor")
