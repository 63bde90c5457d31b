#!/usr/bin/env python
"""Delivery throughput of ``db_worker`` beside a plain ``requests`` loop, and what the
delivery log stores per event.

Usage (from the repository root, with the project's virtualenv)::

    DATABASE_URL=postgres://console:console@127.0.0.1:5432/console_bench \\
        .venv/bin/python benchmarks/delivery.py [--destination webhook|customerio|segment]
            [--events 10000] [--workers 2] [--vendor-ms 1] [--latency-events 2000]
            [--rate 0] [--floor-seconds 10] [--floor-processes 2] [--floor-threads 8]
            [--no-floor] [--timeout 600] [--wait-idle 30] [--keep]

Without ``DATABASE_URL`` it uses a throwaway SQLite file, var/bench/delivery.sqlite3
(one worker by default there). ``--help`` lists every option.

What it does
    1. Refuses a database that is not a benchmark one (ingest.py's checks), migrates it,
       starts a fake vendor on 127.0.0.1 (``benchmarks/fake_vendor.py``: ``200 {}`` after
       ``--vendor-ms``, keep-alive) and creates a workspace ``bench-<random>`` with one
       integration of ``--destination`` pointed at it: a webhook (one request per event,
       Standard Webhooks signing), Customer.io (``/api/v2/batch``, up to 100 operations a
       request, through its API base URL) or Segment (``/v1/batch``).
    2. Backlog: starts ``--workers`` ``manage.py db_worker`` processes and warms them up
       with 100 events (delivered), pauses the integration, accepts ``--events``
       realistic track events (``loadgen.track_message``, ~0.7 KB) through
       ``integrations.ingest.accept`` in batches of 100, as ``/v1/batch`` does, waits for
       the routers to turn them into dispatches, then resumes the integration:
       deliveries/s is the backlog over the time from the resume to the last delivery
       (``delivered_at``). Routing is left out (``benchmarks/end_to_end.py`` measures
       ingest, routing and delivery together), so is the workers' start-up.
    3. Latency: accepts ``--latency-events`` more at a steady ``--rate`` (default half
       the throughput just measured) while the workers run, and gives p50/p95 from each
       event's ``received_at`` to its first arrival at the fake vendor.
    4. The floor (webhook only; ``--no-floor`` skips it): the workers stopped,
       ``--floor-processes`` processes x ``--floor-threads`` threads, each thread with its
       own keep-alive ``requests.Session``, POST the body the webhook last sent (same
       bytes, same size) to the same fake vendor for ``--floor-seconds``: requests/s.
       The goal: deliveries/s at least 70 % of it.
    5. The log: bytes the fake vendor received in request bodies per event, beside the
       bytes the delivery log stores per event (exchanges, deliveries, earlier attempts
       of the integration; how they are counted is printed), and, on PostgreSQL, the
       growth of those tables on disk (indexes and TOAST included). The goal for a
       batching vendor (Customer.io, Segment): at most 1.5x the bytes sent.
    6. Prints the figures and a Markdown table, stops everything and deletes what it
       created (``--keep`` leaves the workspace).
"""

import argparse
import multiprocessing
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from benchmarks import harness  # noqa: E402
from benchmarks.fake_vendor import FakeVendor  # noqa: E402
from benchmarks.loadgen import track_message  # noqa: E402
from benchmarks.paced import tagged_message  # noqa: E402

BATCH = 100
WARMUP = 100  # events delivered before the backlog: the workers are up and connected
FLOOR_GOAL = 0.70
BYTES_GOAL = 1.5
BATCHING = {"customerio", "segment"}
PATHS = {"webhook": "/hook", "customerio": "/api/v2/batch", "segment": "/v1/batch"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Delivery throughput of db_worker vs a plain requests loop (see docstring)."
    )
    parser.add_argument(
        "--destination", choices=sorted(PATHS), default="webhook", help="the vendor (webhook)"
    )
    parser.add_argument("--events", type=int, default=10_000, help="backlog size (10000)")
    parser.add_argument(
        "--workers", type=int, default=None, help="db_worker processes (2; 1 on SQLite)"
    )
    parser.add_argument("--vendor-ms", type=float, default=1.0, help="vendor answer time (1)")
    parser.add_argument(
        "--latency-events", type=int, default=2000, help="events of the latency phase (2000)"
    )
    parser.add_argument(
        "--rate", type=float, default=0, help="events/s of the latency phase (0: half the rate)"
    )
    parser.add_argument("--floor-seconds", type=float, default=10.0, help="floor run (10)")
    parser.add_argument("--floor-processes", type=int, default=2, help="floor processes (2)")
    parser.add_argument(
        "--floor-threads", type=int, default=8, help="floor threads per process (8)"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the requests floor")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    harness.add_common_arguments(parser, "the bench workspace")
    args = parser.parse_args(argv)
    if args.events < 1 or args.latency_events < 0 or args.floor_seconds <= 0:
        parser.error("--events must be positive, --latency-events not negative")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be positive")
    return args


def integration_spec(destination: str, vendor: FakeVendor) -> harness.IntegrationSpec:
    name = f"Bench {destination}"
    if destination == "webhook":
        return harness.IntegrationSpec("webhook", name, {"url": vendor.url(PATHS["webhook"])})
    if destination == "customerio":
        settings = {"site_id": "bench", "api_key": "bench-key"}
    else:
        settings = {"write_key": "bench-key"}
    return harness.IntegrationSpec(destination, name, settings, api_base_url=vendor.base_url)


# --- The console's side ----------------------------------------------------------------------


class Backlog:
    """Events accepted through the ingest, as /v1/batch accepts them."""

    def __init__(self, data: harness.BenchData) -> None:
        from integrations.models import Source

        self.source = Source.objects.get(workspace_id=data.workspace_id)
        self.rng = random.Random(7)

    def accept(self, count: int, rate: float = 0.0) -> None:
        from django.utils import timezone

        from integrations.ingest import accept
        from integrations.sources.segment_spec import normalize

        started = time.perf_counter()
        for offset in range(0, count, BATCH):
            now = timezone.now()
            size = min(BATCH, count - offset)
            messages = [
                normalize(tagged_message(track_message(self.rng, now)), received_at=now)
                for _ in range(size)
            ]
            accept(self.source, messages)
            if rate:
                ahead = (offset + size) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)


def delivered_count(integration_id: int) -> int:
    from integrations.models import Delivery

    return Delivery.objects.filter(
        integration_id=integration_id, status=Delivery.Status.DELIVERED
    ).count()


def wait_delivered(
    integration_id: int, total: int, workers: harness.Workers, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while (done := delivered_count(integration_id)) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {done:,}/{total:,} delivered after {timeout:g} s")
        workers.check_alive()
        time.sleep(0.2)


def wait_routed(workspace_id: int, workers: harness.Workers, timeout: float) -> None:
    from integrations.models import RoutingJob

    deadline = time.monotonic() + timeout
    while RoutingJob.objects.filter(workspace_id=workspace_id).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: events not routed after {timeout:g} s")
        workers.check_alive()
        time.sleep(0.2)


def last_delivery(integration_id: int) -> Any:
    from django.db.models import Max

    from integrations.models import Delivery

    deliveries = Delivery.objects.filter(integration_id=integration_id)
    return deliveries.aggregate(last=Max("delivered_at"))["last"]


def latencies_ms(workspace_id: int, arrivals: dict[str, float], since: object) -> list[float]:
    """Receipt (``received_at``) to first arrival at the vendor, of the events received
    since ``since``, sorted; events not arrived are left out (and counted apart)."""
    from integrations.models import Event

    rows = Event.objects.filter(workspace_id=workspace_id, received_at__gte=since).values_list(
        "message_id", "received_at"
    )
    return sorted(
        (arrivals[mid] - received.timestamp()) * 1000 for mid, received in rows if mid in arrivals
    )


def status_counts(integration_id: int) -> dict[str, int]:
    from django.db.models import Count

    from integrations.models import Delivery

    rows = Delivery.objects.filter(integration_id=integration_id).values_list("status")
    return dict(rows.annotate(n=Count("pk")).values_list("status", "n"))


# --- The floor: a plain requests loop ----------------------------------------------------------


def _floor_process(
    url: str, body: bytes, threads: int, start_at: float, seconds: float, out: Any
) -> None:
    import requests

    counts = [0] * threads
    errors = [0] * threads

    def loop(index: int) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        time.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        while time.time() < deadline:
            try:
                answer = session.post(url, data=body, headers=headers, timeout=30)
            except requests.RequestException:
                errors[index] += 1
                continue
            if answer.ok:
                counts[index] += 1
            else:
                errors[index] += 1

    pool = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((sum(counts), sum(errors)))


@dataclass
class Floor:
    requests_per_s: float
    errors: int
    body_bytes: int
    cpu: harness.CpuShare | None


def run_floor(vendor: FakeVendor, body: bytes, args: argparse.Namespace) -> Floor:
    """``processes`` x ``threads`` keep-alive sessions POSTing ``body`` to the vendor."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 1.5  # every process and thread ready before the start
    processes = [
        multiprocessing.Process(
            target=_floor_process,
            args=(
                vendor.url(PATHS["webhook"]),
                body,
                args.floor_threads,
                start_at,
                args.floor_seconds,
                results,
            ),
        )
        for _ in range(args.floor_processes)
    ]
    for process in processes:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    meter = harness.CpuMeter({"floor": [p.pid for p in processes if p.pid], "vendor": [vendor.pid]})
    done = [results.get(timeout=args.floor_seconds + 60) for _ in processes]
    cpu = meter.stop()
    for process in processes:
        process.join(timeout=10)
    total, errors = sum(d[0] for d in done), sum(d[1] for d in done)
    return Floor(total / args.floor_seconds, errors, len(body), cpu)


# --- Running and reporting -------------------------------------------------------------------


@dataclass
class Outcome:
    deliveries_per_s: float
    drain_seconds: float
    drain_cpu: harness.CpuShare | None
    rate: float
    latencies: list[float]
    not_arrived: int
    statuses: dict[str, int]
    attempts_per_delivery: float
    vendor: dict
    events: int
    stored: int
    stored_how: str
    disk_growth: int | None


def run(args: argparse.Namespace, data: harness.BenchData, vendor: FakeVendor) -> Outcome:
    from django.db import close_old_connections
    from django.db.models import Avg
    from django.utils import timezone

    from integrations.delivery.operations import resume
    from integrations.models import Delivery, Integration

    integration_id = data.integration_ids[0]
    integration = Integration.objects.get(pk=integration_id)
    sizes_before = harness.relation_sizes(harness.log_tables())
    backlog = Backlog(data)
    workers = harness.Workers(args.workers, "delivery").start()
    try:
        harness.log(f"warming up {args.workers} worker(s) with {WARMUP} events ...")
        backlog.accept(WARMUP)
        wait_delivered(integration_id, WARMUP, workers, args.timeout)
        # The backlog is routed while the integration is paused, then delivered from its
        # dispatches once resumed: what is timed is the delivery.
        Integration.objects.filter(pk=integration_id).update(paused=True)
        harness.log(f"accepting and routing a backlog of {args.events:,} events ...")
        backlog.accept(args.events)
        wait_routed(data.workspace_id, workers, args.timeout)
        harness.wait_for_idle(args.wait_idle)
        harness.log(f"{args.workers} worker(s) delivering the backlog ...")
        meter = harness.CpuMeter({"workers": workers.pids, "vendor": [vendor.pid]})
        resumed = timezone.now()
        resume(integration)
        wait_delivered(integration_id, WARMUP + args.events, workers, args.timeout)
        drain_cpu = meter.stop()
        seconds = (last_delivery(integration_id) - resumed).total_seconds()
        throughput = args.events / seconds
        harness.log(f"backlog: {throughput:,.0f} deliveries/s over {seconds:.1f} s")
        rate = args.rate or max(10.0, throughput / 2)
        latencies: list[float] = []
        not_arrived = 0
        if args.latency_events:
            harness.log(f"latency: {args.latency_events:,} events at {rate:,.0f} events/s ...")
            phase_started = timezone.now()
            arrived_before = vendor.stats()["events"]
            backlog.accept(args.latency_events, rate)
            wait_delivered(
                integration_id, WARMUP + args.events + args.latency_events, workers, args.timeout
            )
            arrivals = dict(vendor.arrivals(arrived_before))
            latencies = latencies_ms(data.workspace_id, arrivals, phase_started)
            not_arrived = args.latency_events - len(latencies)
    finally:
        workers.stop()
        close_old_connections()
    errors = workers.errors()
    if errors:
        harness.log(f"the workers logged errors:\n{errors}")
    attempts = Delivery.objects.filter(integration_id=integration_id).aggregate(
        a=Avg("attempt_count")
    )["a"]
    stored, how = harness.stored_log_bytes(integration_id)
    sizes_after = harness.relation_sizes(harness.log_tables())
    growth = sum(sizes_after.values()) - sum(sizes_before.values()) if sizes_after else None
    return Outcome(
        deliveries_per_s=throughput,
        drain_seconds=seconds,
        drain_cpu=drain_cpu,
        rate=rate,
        latencies=latencies,
        not_arrived=not_arrived,
        statuses=status_counts(integration_id),
        attempts_per_delivery=attempts or 0.0,
        vendor=vendor.stats(),
        events=WARMUP + args.events + args.latency_events,
        stored=stored,
        stored_how=how,
        disk_growth=growth,
    )


def report(
    args: argparse.Namespace,
    db_version: str,
    busy_before: float | None,
    outcome: Outcome,
    floor: Floor | None,
) -> None:
    p50 = harness.percentile(outcome.latencies, 0.50)
    p95 = harness.percentile(outcome.latencies, 0.95)
    sent_per_event = outcome.vendor["body_bytes"] / outcome.events
    stored_per_event = outcome.stored / outcome.events
    print()
    print("Delivery benchmark")
    for line in harness.describe_machine(db_version, busy_before):
        print(line)
    print(
        f"  workers   : {args.workers} db_worker process(es), DELIVERY_CONCURRENCY "
        f"{os.environ.get('DELIVERY_CONCURRENCY', 'default')}"
    )
    print(
        f"  vendor    : fake {args.destination} on {harness.HOST}, answers in {args.vendor_ms:g} ms"
    )
    print(
        f"  events    : {WARMUP} warm-up + {args.events:,} backlog + {args.latency_events:,} "
        "at a steady rate, track calls of ~0.7 KB"
    )
    print()
    print(
        f"backlog    : {outcome.deliveries_per_s:,.0f} deliveries/s "
        f"({args.events:,} routed while paused, over {outcome.drain_seconds:.1f} s from the "
        "resume to the last delivery)"
    )
    if outcome.drain_cpu is not None:
        print(f"  CPU cores: {outcome.drain_cpu.describe()}")
    if outcome.latencies:
        late = f"; {outcome.not_arrived} not arrived" if outcome.not_arrived else ""
        print(
            f"latency    : {outcome.rate:,.0f} events/s offered; receipt to vendor p50 "
            f"{p50:,.0f} ms, p95 {p95:,.0f} ms ({len(outcome.latencies):,} events{late})"
        )
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(outcome.statuses.items()))
    print(
        f"deliveries : {statuses}; {outcome.attempts_per_delivery:.2f} attempts per delivery; "
        f"vendor: {outcome.vendor['requests']:,} requests, {outcome.vendor['events']:,} events, "
        f"{outcome.vendor['duplicates']:,} duplicates"
    )
    ratio = None
    if floor is not None:
        ratio = outcome.deliveries_per_s / floor.requests_per_s
        print(
            f"floor      : {floor.requests_per_s:,.0f} requests/s ({args.floor_processes} "
            f"processes x {args.floor_threads} threads, keep-alive requests.Session each, "
            f"{floor.body_bytes:,}-byte body, {args.floor_seconds:g} s, {floor.errors} errors)"
        )
        if floor.cpu is not None:
            print(f"  CPU cores: {floor.cpu.describe()}")
        met = "MET" if ratio >= FLOOR_GOAL else "NOT MET"
        print(
            f"goal       : {met}: deliveries at {ratio:.0%} of the requests loop "
            f"(goal >= {FLOOR_GOAL:.0%})"
        )
    print()
    bytes_ratio = stored_per_event / sent_per_event if sent_per_event else float("nan")
    print(
        f"log bytes  : sent {sent_per_event:,.0f} B/event (request bodies the vendor "
        f"received); stored {stored_per_event:,.0f} B/event = {bytes_ratio:.2f}x "
        f"({outcome.stored_how})"
    )
    if outcome.disk_growth is not None:
        print(
            f"  on disk  : the log tables grew {outcome.disk_growth / outcome.events:,.0f} "
            "B/event (pg_total_relation_size: heap, TOAST and indexes)"
        )
    if args.destination in BATCHING:
        met = "MET" if bytes_ratio <= BYTES_GOAL else "NOT MET"
        print(
            f"goal       : {met}: {bytes_ratio:.2f}x the bytes sent stored per event "
            f"(goal <= {BYTES_GOAL}x, batching vendor)"
        )
    print()
    print("Markdown (README):")
    print()
    print(
        "| Destination | Workers | Vendor answers in | Deliveries/s | Floor requests/s "
        "| Console/floor | p50 | p95 | Sent B/event | Stored B/event |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    floor_rps = f"{floor.requests_per_s:,.0f}" if floor else ""
    print(
        f"| {args.destination} | {args.workers} | {args.vendor_ms:g} ms "
        f"| {outcome.deliveries_per_s:,.0f} | {floor_rps} | {f'{ratio:.0%}' if ratio else ''} "
        f"| {p50:,.0f} ms | {p95:,.0f} ms | {sent_per_event:,.0f} | {stored_per_event:,.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    throwaway = harness.prepare_environment("delivery")
    sqlite = os.environ["DATABASE_URL"].startswith("sqlite")
    args.workers = args.workers or (1 if sqlite else 2)
    busy_before = harness.machine_busy()
    vendor = FakeVendor(args.vendor_ms).start()
    data = None
    try:
        db_version = harness.setup_database(args.allow_existing_data)
        data = harness.create_workspace([integration_spec(args.destination, vendor)], db_version)
        harness.log(f"created workspace {data.slug} ({db_version})")
        outcome = run(args, data, vendor)
        floor = None
        if args.destination == "webhook" and not args.no_floor:
            harness.log(f"floor: a requests loop for {args.floor_seconds:g} s ...")
            harness.wait_for_idle(args.wait_idle)
            floor = run_floor(vendor, vendor.sample(PATHS["webhook"]), args)
        report(args, db_version, busy_before, outcome, floor)
    finally:
        vendor.stop()
        harness.clean_up([data] if data is not None else [], args.keep, throwaway)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
