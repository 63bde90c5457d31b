#!/usr/bin/env python
"""Delivery throughput: N events to one webhook integration, W ``db_worker`` processes.

Usage (from the repository root, with the project's virtualenv)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/delivery.py [--events 10000] [--workers 2]

What it does
    1. Starts a fake vendor on 127.0.0.1 in its own process: a small asyncio HTTP/1.1
       keep-alive server that answers every POST with 200 after ``--vendor-ms`` (default
       1 ms).
    2. Migrates the database (``DATABASE_URL``; default a throwaway SQLite file, where only
       one worker can run) and creates a workspace ``bench-<random>`` with a Segment source
       and a webhook integration pointing at the vendor (one request per event).
    3. Throughput: accepts ``--events`` track events through the ingest
       (``integrations.ingest.accept``, batches of 100, as ``/v1/batch`` does), then starts
       ``--workers`` ``manage.py db_worker`` processes and times how long they take to
       deliver that backlog: deliveries/s from the workers' start to the last delivery.
    4. Latency: accepts ``--latency-events`` more at a steady ``--rate`` (default: half the
       throughput just measured) while the workers run, and prints p50/p95 of the time from
       receipt to delivery, attempts per delivery and the vendor's request count.
    5. Stops everything and deletes the workspace (``--keep`` leaves it).

It refuses a database holding workspaces whose slug does not start with ``bench-``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from multiprocessing import Process, Queue
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100


def vendor_server(port_queue: Queue, delay: float) -> None:
    """The fake vendor: 200 after ``delay`` seconds, HTTP/1.1 keep-alive, counting requests.

    A bare asyncio server rather than ``http.server``: its own CPU cost per request is a
    fraction, so the machine's two cores go to what is measured. ``GET`` answers the count.
    """
    import asyncio

    count = 0
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET"):
                    body = str(count).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                else:
                    if delay:
                        await asyncio.sleep(delay)
                    count += 1
                    writer.write(ok)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def environment(database_url: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {**os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=env.get("SECRET_KEY") or uuid.uuid4().hex * 2,
        SECRETS_ENCRYPTION_KEYS=env.get("SECRETS_ENCRYPTION_KEYS")
        or Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        INTEGRATIONS_ALLOW_PRIVATE_URLS="true",
        LOG_LEVEL="WARNING",
    )
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--latency-events", type=int, default=2000, help="events of the latency phase"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="events/s in the latency phase (0: half the throughput)",
    )
    parser.add_argument("--vendor-ms", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s)")
    parser.add_argument("--keep", action="store_true", help="keep the bench workspace")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{scratch / 'db.sqlite3'}"
    if database_url.startswith("sqlite") and args.workers > 1:
        parser.error("SQLite runs one worker: use --workers 1, or PostgreSQL")
    env = environment(database_url)

    ports: Queue = Queue()
    vendor = Process(target=vendor_server, args=(ports, args.vendor_ms / 1000), daemon=True)
    vendor.start()
    vendor_url = f"http://127.0.0.1:{ports.get(timeout=10)}"

    setup_django(env)
    from django.db.models import Avg
    from django.utils import timezone

    from integrations.ingest import accept
    from integrations.models import Delivery, Integration, Source, Workspace
    from integrations.sources.segment_spec import normalize

    foreign = Workspace.objects.exclude(slug__startswith="bench-")
    if foreign.exists():
        sys.exit("This database holds real workspaces; point DATABASE_URL at a bench database.")
    workspace = Workspace.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
    source = Source.objects.create(workspace=workspace, name="Bench source")
    integration = Integration(workspace=workspace, name="Bench webhook", kind="webhook")
    integration.set_settings({"url": f"{vendor_url}/hook"})
    integration.save()

    def accept_events(count: int, rate: float) -> None:
        started = time.perf_counter()
        for offset in range(0, count, BATCH):
            now = timezone.now()
            size = min(BATCH, count - offset)
            messages = [
                normalize(
                    {
                        "type": "track",
                        "userId": f"user-{(offset + i) % 500}",
                        "event": "Order Completed",
                        "properties": {"revenue": 9.99, "n": offset + i},
                    },
                    received_at=now,
                )
                for i in range(size)
            ]
            accept(source, messages)
            if rate:
                ahead = (offset + size) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def wait_delivered(total: int) -> None:
        deliveries = Delivery.objects.filter(integration=integration)
        deadline = time.perf_counter() + args.timeout
        while deliveries.filter(status=Delivery.Status.DELIVERED).count() < total:
            if time.perf_counter() > deadline:
                sys.exit(f"timed out: {deliveries.filter(status='delivered').count()}/{total}")
            for worker in workers:
                if worker.poll() is not None:
                    sys.exit(f"a worker stopped: {worker.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)

    def latencies(since: object) -> list[float]:
        rows = Delivery.objects.filter(integration=integration, created_at__gte=since)
        return [
            (delivered - received).total_seconds()
            for delivered, received in rows.values_list("delivered_at", "event__received_at")
        ]

    workers: list[subprocess.Popen] = []
    try:
        # Throughput: a backlog of N events, then W workers drain it.
        accept_events(args.events, 0)
        print(f"{args.events} events accepted; starting {args.workers} worker(s)")
        drain_started = timezone.now()
        workers += [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "db_worker",
                    "--no-reload",
                    "--interval",
                    "0.01",
                    "--no-startup-delay",
                    "--worker-id",
                    f"bench-{n}",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for n in range(args.workers)
        ]
        wait_delivered(args.events)
        last = Delivery.objects.filter(integration=integration).latest("delivered_at")
        throughput = args.events / (last.delivered_at - drain_started).total_seconds()

        # Latency: events accepted at a steady rate the workers keep up with.
        rate = args.rate or max(10.0, throughput / 2)
        phase_started = timezone.now()
        accept_events(args.latency_events, rate)
        wait_delivered(args.events + args.latency_events)
        lat = latencies(phase_started)

        with urllib.request.urlopen(vendor_url, timeout=5) as answer:
            vendor_requests = int(answer.read())
        attempts = Delivery.objects.filter(integration=integration).aggregate(
            a=Avg("attempt_count")
        )
        print(f"database {database_url.split('@')[-1]}; vendor answers in {args.vendor_ms} ms")
        print("| workers | deliveries/s (backlog of N) | events/s offered | p50 | p95 |")
        print("|---|---|---|---|---|")
        print(
            f"| {args.workers} | {throughput:,.0f} (N={args.events}) | {rate:,.0f} "
            f"| {statistics.median(lat) * 1000:,.0f} ms | {percentile(lat, 0.95) * 1000:,.0f} ms |"
        )
        print(
            f"attempts per delivery {attempts['a']:.2f}; vendor requests {vendor_requests} "
            f"for {args.events + args.latency_events} events"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        vendor.terminate()
        if not args.keep:
            from django_tasks_db.models import DBTaskResult

            workspace.delete()
            DBTaskResult.objects.filter(task_path__startswith="integrations.").delete()


if __name__ == "__main__":
    main()
