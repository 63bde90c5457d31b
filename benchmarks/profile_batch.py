#!/usr/bin/env python
"""Where the console's time goes on ``POST /v1/batch``: cProfile of one process, no network.

Usage (from the repository root)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/profile_batch.py [--requests 300] [--batch-size 100]
            [--path /v1/batch] [--timer cpu|wall] [--top 35] [--integrations 0]

Same environment, safety checks, workspace and messages as benchmarks/ingest.py; the
requests go straight to ``console.wsgi.application`` (every middleware included, no
gunicorn, no sockets) one after the other. Prints the time per request split into SQL
(wall-clock time inside the database driver, per statement kind) and the rest, the time
of the main steps of the ingest path, and the top functions by own time. ``--timer cpu``
(the default) profiles CPU time, which other processes on the machine do not inflate;
``--timer wall`` includes waiting for the database.
"""

import argparse
import base64
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from benchmarks.ingest import (  # noqa: E402
    DEFAULT_SQLITE,
    _remove_sqlite,
    cleanup,
    log,
    prepare_environment,
    redacted,
    setup_database,
)
from benchmarks.loadgen import HOST, Payloads  # noqa: E402

# (label, file suffix, function name): the steps of the batch path, in the order they run.
STEPS = [
    ("whole request (WSGI handler)", "django/core/handlers/wsgi.py", "__call__"),
    ("  TrackingAPIView.post", "integrations/sources/http_api.py", "post"),
    ("    read_body", "integrations/sources/body.py", "read_body"),
    ("    parse_json (json.loads)", "integrations/sources/body.py", "parse_json"),
    (
        "    authenticate_source (1 SELECT)",
        "integrations/sources/http_api.py",
        "authenticate_source",
    ),
    ("    accept_batch", "integrations/sources/batch.py", "accept_batch"),
    ("      normalize (x batch)", "integrations/sources/http_api.py", "normalize"),
    ("        compact_json size check", "integrations/sources/segment_spec.py", "compact_json"),
    ("        segment_spec.normalize", "integrations/sources/segment_spec.py", "normalize"),
    ("          parse_timestamp", "integrations/sources/segment_spec.py", "parse_timestamp"),
    ("      ingest.accept", "integrations/ingest.py", "accept"),
    ("        event_from_message (x batch)", "integrations/ingest.py", "event_from_message"),
    ("          Model.__init__", "django/db/models/base.py", "__init__"),
    ("        bulk_create", "django/db/models/query.py", "bulk_create"),
    ("        profiles.update", "integrations/profiles.py", "update"),
    ("        catalog.record_seen", "integrations/catalog.py", "record_seen"),
    ("        fan_out", "integrations/ingest.py", "fan_out"),
    ("    Response rendering", "rest_framework/response.py", "rendered_content"),
    ("  middleware: sessions", "django/contrib/sessions/middleware.py", "process_response"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--path", default="/v1/batch", choices=("/v1/batch", "/v1/track"))
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--integrations", type=int, default=0)
    parser.add_argument("--whatif", default="", help="patches of benchmarks/whatif (comma list)")
    parser.add_argument("--no-profile", action="store_true", help="time only, no cProfile")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--allow-existing-data", action="store_true")
    return parser.parse_args()


class SqlTimer:
    """``connection.execute_wrapper``: wall time per statement kind."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def __call__(self, execute, sql, params, many, context):
        words = sql.split(None, 3)
        kind = " ".join(words[:3] if words[0] == "INSERT" else words[:1])
        if "FROM" in sql and words[0] == "SELECT":
            kind = "SELECT FROM " + sql.split("FROM", 1)[1].split()[0].strip('"')
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds[kind] += time.perf_counter() - start
            self.count[kind] += 1


def main() -> int:
    args = parse_args()
    args.scenarios, args.servers = ["batch"], ["console"]
    throwaway = prepare_environment()
    if args.whatif:
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.whatif.settings"
        os.environ["BENCH_WHATIF"] = args.whatif
        log(f"what-if: {args.whatif}")
    log(f"database: {redacted(os.environ['DATABASE_URL'])}")
    data = setup_database(args)
    try:
        return run(args, data)
    finally:
        if not args.keep:
            cleanup(data)
            if throwaway:
                _remove_sqlite(DEFAULT_SQLITE)


def run(args: argparse.Namespace, data) -> int:
    from django.db import connection

    from console.wsgi import application

    payloads = Payloads(args.batch_size)
    make_body = payloads.batch if args.path == "/v1/batch" else payloads.track
    events_per_request = args.batch_size if args.path == "/v1/batch" else 1
    auth = "Basic " + base64.b64encode(f"{data.write_key}:".encode()).decode()

    def call() -> None:
        body = make_body()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": args.path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": HOST,
            "SERVER_PORT": "8765",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": HOST,
            "HTTP_AUTHORIZATION": auth,
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        statuses = []
        result = application(environ, lambda status, headers: statuses.append(status))
        b"".join(result)
        result.close()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{args.path} answered {statuses[0]}")

    for _ in range(args.warmup):
        call()

    sql = SqlTimer()
    timer = time.process_time if args.timer == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(sql):
        if not args.no_profile:
            profiler.enable()
        for _ in range(args.requests):
            call()
        profiler.disable()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    n = args.requests

    print(f"\n{n} x POST {args.path} ({events_per_request} events), one process, no network")
    print(f"  database           : {data.db_version}")
    print(
        f"  per request        : {wall / n * 1000:.2f} ms wall, {cpu / n * 1000:.2f} ms CPU "
        f"of this process{'' if args.no_profile else ' (profiler overhead included)'}"
    )
    print(f"  single-core ceiling: {n * events_per_request / wall:,.0f} events/s (wall)")
    sql_total = sum(sql.seconds.values())
    print(
        f"  SQL (wall, driver) : {sql_total / n * 1000:.2f} ms per request, "
        f"{sum(sql.count.values()) / n:.1f} statements per request"
    )
    for kind, seconds in sorted(sql.seconds.items(), key=lambda kv: -kv[1]):
        print(f"      {seconds / n * 1000:7.2f} ms  {sql.count[kind] / n:4.1f} x  {kind}")

    if args.no_profile:
        return 0
    stats = pstats.Stats(profiler)
    unit = "CPU" if args.timer == "cpu" else "wall"
    print(f"\nSteps ({unit} ms per request, cumulative, profiled):")
    index = {}
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        index.setdefault((filename.replace("\\", "/"), function), []).append(row)
    for label, suffix, function in STEPS:
        rows = [
            row
            for (filename, fn), found in index.items()
            if fn == function and filename.endswith(suffix)
            for row in found
        ]
        if rows:
            cumulative = sum(row[3] for row in rows)
            calls = sum(row[1] for row in rows)
            print(f"  {cumulative / n * 1000:8.2f} ms  {calls / n:7.1f} calls  {label}")

    print(f"\nTop {args.top} functions by own time ({unit}):")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(_trim(out.getvalue()))
    print(f"Top {args.top} by cumulative time ({unit}):")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(_trim(out.getvalue()))
    return 0


def _trim(text: str) -> str:
    """pstats output without its preamble and with shorter paths."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    site = str(Path(sys.prefix) / "lib")
    return "\n".join(
        line.replace(site, "<venv>").replace(str(BASE_DIR) + "/", "") for line in lines[start:]
    )


if __name__ == "__main__":
    sys.exit(main())
