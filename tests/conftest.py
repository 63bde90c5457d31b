"""Shared fixtures: a workspace with a Segment source, users with roles, API clients."""

import os

import pytest
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

from integrations.models import Integration, Source, Workspace, WorkspaceMembership

# Admin clients (csm, viewer) for the admin page tests.
pytest_plugins = ["tests.admin_clients"]

# Hypothesis profiles (HYPOTHESIS_PROFILE): "ci" (the default under CI=true) is bounded and
# derandomised, so a run takes seconds and fails the same way twice; "dev" (the default
# elsewhere) draws new examples each run; "thorough" is for a long local hunt.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, **_common)
settings.register_profile("dev", max_examples=100, **_common)
settings.register_profile("thorough", max_examples=5000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def workspace(db) -> Workspace:
    return Workspace.objects.create(name="Acme", slug="acme")


@pytest.fixture
def source(workspace) -> Source:
    return Source.objects.create(workspace=workspace, name="Website")


@pytest.fixture
def webhook_integration(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="Hook", kind="webhook")
    integration.set_settings({"url": "https://hooks.example.com/in"})
    integration.save()
    return integration


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def member_client(django_user_model, workspace):
    """An API client logged in as a member of ``workspace`` with the given role."""

    def make(role: str = WorkspaceMembership.Role.CSM, username: str = "csm") -> APIClient:
        user = django_user_model.objects.create_user(username=username, password="pw")
        WorkspaceMembership.objects.create(user=user, workspace=workspace, role=role)
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
