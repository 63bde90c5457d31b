"""Data migrations, run on a database filled by the previous schema."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from integrations.models import Integration

BEFORE = ("integrations", "0009_credentials_in_secret_settings")
AFTER = ("integrations", "0010_chartmogul_mode_and_field_mappings")


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    yield executor
    # Leave the schema as the rest of the suite expects it.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def migrate(executor: MigrationExecutor, target: tuple[str, str]):
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_existing_chartmogul_integrations_keep_the_rest_api(executor):
    old = migrate(executor, BEFORE)
    workspace = old.get_model("integrations", "Workspace").objects.create(name="A", slug="a")
    old_integration = old.get_model("integrations", "Integration")
    rest = old_integration.objects.create(
        workspace=workspace,
        name="ChartMogul",
        kind="chartmogul",
        settings={"data_source_uuid": "ds_1", "create_company_when": "user_created"},
        secret_settings={"api_key": "cm_key"},
    )
    other = old_integration.objects.create(
        workspace=workspace, name="Segment", kind="segment", settings={"region": "eu"}
    )

    migrate(executor, AFTER)

    migrated = Integration.objects.get(pk=rest.pk)
    assert migrated.settings == {
        "data_source_uuid": "ds_1",
        "create_company_when": "user_created",
        "mode": "rest",
    }
    assert migrated.secret_settings == {"api_key": "cm_key"}
    assert migrated.field_mappings == {}
    assert Integration.objects.get(pk=other.pk).settings == {"region": "eu"}
    # It still validates and plans as a REST integration.
    migrated.set_settings(migrated.settings)
    assert migrated.settings["mode"] == "rest"

    migrate(executor, BEFORE)
    reverted = old.get_model("integrations", "Integration").objects.get(pk=rest.pk)
    assert "mode" not in reverted.settings
