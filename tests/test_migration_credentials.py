"""The data migration that moves credentials out of ``settings`` (and the history), on a
database filled by the previous schema."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from integrations.models import Integration
from tests.test_audit import every_history_row

APP = "integrations"
HEADERS = {"Authorization": "Bearer legacy-token-4f2a", "X-Team": "legacy-team-9c1d"}
URL = "https://legacy-user:legacy-pass-7e3b@hooks.example.com/in?api_key=legacy-key-0a8f&v=1"
MASKED = "https://********@hooks.example.com/in?api_key=********&v=1"
CHURNZERO_URL = "https://analytics.churnzero.net/?token=legacy-cz-5b6e"
VALUES = ["legacy-token-4f2a", "legacy-team-9c1d", "legacy-pass-7e3b", "legacy-key-0a8f"]
VALUES += ["legacy-user", "legacy-cz-5b6e"]


def this_migration(executor: MigrationExecutor) -> tuple[str, str]:
    (key,) = [
        key
        for key in executor.loader.disk_migrations
        if key[0] == APP and key[1].endswith("_credentials_in_secret_settings")
    ]
    return key


@pytest.fixture
def old_schema(transactional_db):
    """The app migrated to the migration before this one, then every migration again."""
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration(*this_migration(executor))
    (previous,) = [dep for dep in migration.dependencies if dep[0] == APP]
    executor.migrate([previous])
    executor.loader.build_graph()
    yield executor, this_migration(executor)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def to_latest() -> None:
    """Migrate forward through this migration and any later one."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_credentials_move_to_the_secrets_and_leave_the_history(old_schema):
    executor, target = old_schema
    old = executor.loader.project_state(
        [dep for dep in executor.loader.get_migration(*target).dependencies if dep[0] == APP]
    ).apps
    Workspace = old.get_model(APP, "Workspace")
    OldIntegration = old.get_model(APP, "Integration")
    History = old.get_model(APP, "HistoricalIntegration")
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    rows = {
        "hook": {
            "kind": "webhook",
            "settings": {"url": URL, "headers": HEADERS},
            "secret_settings": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        },
        "plain": {
            "kind": "webhook",
            "settings": {"url": "https://plain.example.com/in", "headers": {}},
            "secret_settings": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        },
        "cz": {
            "kind": "churnzero",
            "settings": {"instance_url": CHURNZERO_URL},
            "secret_settings": {"app_key": "cz-app-key"},
        },
        "cio": {
            "kind": "customerio",
            "settings": {"site_id": "s1", "region": "eu"},
            "secret_settings": {"api_key": "cio-key"},
        },
    }
    ids = {}
    for name, fields in rows.items():
        integration = OldIntegration.objects.create(workspace=workspace, name=name, **fields)
        ids[name] = integration.pk
        for history_type in "+~":
            History.objects.create(
                id=integration.pk,
                workspace_id=workspace.pk,
                name=name,
                kind=fields["kind"],
                settings=fields["settings"],
                created_at=timezone.now(),
                updated_at=timezone.now(),
                history_date=timezone.now(),
                history_type=history_type,
            )
    assert "legacy-token-4f2a" in every_history_row()

    to_latest()

    hook = Integration.objects.get(pk=ids["hook"])
    # (In the order the database gives the old keys: PostgreSQL's jsonb sorts them.)
    assert hook.settings == {"url": MASKED, "headers": list(hook.secret_settings["headers"])}
    assert sorted(hook.settings["headers"]) == ["Authorization", "X-Team"]
    assert hook.secret_settings == {
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "url": URL,
        "headers": HEADERS,
    }
    # The requests built from it are those of before.
    assert hook.config()["url"] == URL and hook.config()["headers"] == HEADERS
    plain = Integration.objects.get(pk=ids["plain"])
    assert plain.settings == {"url": "https://plain.example.com/in", "headers": []}
    assert plain.secret_settings["headers"] == {}
    cz = Integration.objects.get(pk=ids["cz"])
    assert cz.settings == {"instance_url": "https://analytics.churnzero.net/?token=********"}
    assert cz.config()["instance_url"] == CHURNZERO_URL
    cio = Integration.objects.get(pk=ids["cio"])
    assert (cio.settings, cio.secret_settings) == (rows["cio"]["settings"], {"api_key": "cio-key"})

    # Nothing of it is readable in the database but in the encrypted column.
    with connection.cursor() as cursor:
        cursor.execute("SELECT settings, secret_settings FROM integrations_integration")
        columns = repr(cursor.fetchall())
    history = every_history_row()
    for value in VALUES:
        assert value not in columns
        assert value not in history
    records = Integration.history.filter(id=ids["hook"])
    assert [r.settings for r in records] == [hook.settings, hook.settings]
    assert {r.settings["instance_url"] for r in Integration.history.filter(id=ids["cz"])} == {
        cz.settings["instance_url"]
    }


def test_undoing_it_puts_the_values_back_in_the_settings(old_schema):
    executor, target = old_schema
    to_latest()  # the current models are used below
    workspace_model = Integration._meta.get_field("workspace").related_model
    workspace = workspace_model.objects.create(name="Acme", slug="acme")
    hook = Integration(workspace=workspace, name="Hook", kind="webhook")
    hook.set_settings({"url": URL, "headers": HEADERS})
    hook.save()
    before = hook.config()

    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration(*target)
    executor.migrate([dep for dep in migration.dependencies if dep[0] == APP])
    old = executor.loader.project_state(
        [dep for dep in migration.dependencies if dep[0] == APP]
    ).apps
    restored = old.get_model(APP, "Integration").objects.get(pk=hook.pk)
    assert restored.settings["url"] == URL and restored.settings["headers"] == HEADERS
    assert {**restored.settings, **restored.secret_settings} == before
    assert set(restored.secret_settings) == {"secret"}
