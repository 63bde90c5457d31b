"""The floor's one view: parse the body, insert each message's JSON as one row, answer.

No authentication, validation, normalisation, deduplication or fan-out: the least work
that still stores one row per event (a batch has to be parsed to be split into events).

``BENCH_FLOOR_MODE`` picks how rows are written:

``sql`` (default)
    one multi-row ``INSERT ... VALUES (%s), (%s) ...`` through Django's connection, each
    message re-serialised with ``json.dumps``: the cheapest way to store them from Django.
``orm``
    ``RawEvent.objects.bulk_create``: the idiomatic minimal view. On PostgreSQL Django 5.2
    bulk-inserts through ``UNNEST`` arrays, which makes psycopg escape each JSON document
    for an array literal in Python (slow on Python 3.11): a floor that penalises itself.
"""

import json
import os

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from benchmarks.floor.models import RawEvent
from benchmarks.floor.schema import TABLE

MODE = os.environ.get("BENCH_FLOOR_MODE", "sql")
if MODE not in ("sql", "orm"):
    raise ValueError(f"BENCH_FLOOR_MODE must be sql or orm, not {MODE!r}")


@csrf_exempt
@require_POST
def ingest(request: HttpRequest, call: str) -> JsonResponse:
    body = json.loads(request.body)
    items = body["batch"] if call == "batch" else [body]
    if MODE == "orm":
        RawEvent.objects.bulk_create([RawEvent(payload=item) for item in items])
    else:
        rows = [json.dumps(item, separators=(",", ":"), ensure_ascii=False) for item in items]
        placeholders = ", ".join(["(%s)"] * len(rows))
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} (payload) VALUES {placeholders}", rows)  # noqa: S608
    return JsonResponse({"success": True, "accepted": len(items)})
