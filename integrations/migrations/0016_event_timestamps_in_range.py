"""Events stored before timestamps were bounded, brought into the bounds.

Ingest accepts timestamps from 1900 to 2199 (UTC) only, a range every part of the stack
reads. Before that it stored any time Python parses, and, after a UTC offset or the
clock-skew correction, times outside Python's own range (year 10000, 1 BC) that
PostgreSQL holds but the driver cannot read back: one such row broke the workspace's
lists, export and worker claims. Each client timestamp outside the bounds is set to the
nearer bound; the message as sent, in ``payload``, keeps the original. The updates never
read a row into Python; they scan the events table once per column (no index covers
these columns), which takes minutes at a hundred million events, without blocking
writers.
"""

import datetime as dt

from django.db import migrations

MIN_TIMESTAMP = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_TIMESTAMP = dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
COLUMNS = ("timestamp", "original_timestamp", "sent_at")


def clamp(apps, schema_editor):
    events = apps.get_model("integrations", "Event").objects.using(schema_editor.connection.alias)
    for column in COLUMNS:
        events.filter(**{f"{column}__lt": MIN_TIMESTAMP}).update(**{column: MIN_TIMESTAMP})
        events.filter(**{f"{column}__gt": MAX_TIMESTAMP}).update(**{column: MAX_TIMESTAMP})


class Migration(migrations.Migration):
    dependencies = [("integrations", "0015_finished_task_index")]

    operations = [migrations.RunPython(clamp, migrations.RunPython.noop, elidable=True)]
