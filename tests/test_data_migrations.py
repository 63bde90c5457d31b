"""Data migrations, run on a database filled by the previous schema."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from integrations.models import Event, Integration
from integrations.sources.segment_spec import MAX_TIMESTAMP, MIN_TIMESTAMP

BEFORE = ("integrations", "0009_credentials_in_secret_settings")
AFTER = ("integrations", "0010_chartmogul_mode_and_field_mappings")
TIMESTAMPS_BEFORE = ("integrations", "0015_finished_task_index")
TIMESTAMPS_AFTER = ("integrations", "0016_event_timestamps_in_range")
FINE = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


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


def store_raw(message_id: str, workspace_id: int, timestamp: str, sent_at: str | None) -> None:
    """A row as the old code could leave it: written by the database, never read back."""
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, workspace_id, message_id, type, event, user_id, "  # noqa: S608
            "anonymous_id, group_id, original_timestamp, sent_at, received_at, timestamp, "
            "payload, is_test) VALUES (%s, %s, %s, 'track', 'E', 'u', '', '', NULL, "
            f"{sent_at or 'NULL'}, %s, {timestamp}, %s, %s)",
            [message_id.ljust(32, "0"), workspace_id, message_id, FINE, '{"sentAt": "x"}', False],
        )


def test_events_out_of_the_bounds_are_clamped_and_the_others_kept(executor):
    old = migrate(executor, TIMESTAMPS_BEFORE)
    workspace = old.get_model("integrations", "Workspace").objects.create(name="A", slug="a")
    if connection.vendor == "postgresql":
        # What the driver cannot read: year 10000 and 1 BC.
        late, early = "'10000-01-01 04:59:59+00'::timestamptz", "'0001-12-31 19:00:00+00 BC'"
        fine = "'2026-03-01 12:00:00+00'"
    else:  # SQLite keeps text, in Django's format: years 1 to 9999
        late, early = "'9999-12-31 23:59:59'", "'0001-01-01 00:00:00'"
        fine = "'2026-03-01 12:00:00'"
    store_raw("aa", workspace.pk, late, early)
    store_raw("bb", workspace.pk, early, None)
    store_raw("cc", workspace.pk, fine, None)  # in range: untouched

    migrate(executor, TIMESTAMPS_AFTER)

    stored = {e.message_id: e for e in Event.objects.all()}  # every row reads back
    assert (stored["aa"].timestamp, stored["aa"].sent_at) == (MAX_TIMESTAMP, MIN_TIMESTAMP)
    assert (stored["bb"].timestamp, stored["bb"].sent_at) == (MIN_TIMESTAMP, None)
    assert stored["cc"].timestamp == FINE
    assert stored["aa"].payload == {"sentAt": "x"}  # the message as sent is kept
