"""Load generation for benchmarks/ingest.py: Segment track messages and an asyncio HTTP client.

Stdlib only. The client speaks just enough HTTP/1.1 for this job (one request at a time
per connection, keep-alive when the server allows it, Content-Length or chunked
responses) and only ever connects to 127.0.0.1. One event loop drives every simulated
client, which costs the 2-core machine much less CPU than a thread per client.
"""

import asyncio
import base64
import datetime as dt
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"  # never anything else
MID = "__BENCH_MESSAGE_ID__"
MID_BYTES = MID.encode()

EVENTS = ("Order Completed", "Product Viewed", "Signed In", "Subscription Renewed", "Feature Used")
PLANS = ("starter", "team", "business", "enterprise")
CATEGORIES = ("books", "games", "garden", "music", "sports", "tools")
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _properties(rng: random.Random, name: str) -> dict:
    if name == "Order Completed":
        products = [
            {
                "product_id": f"sku-{rng.randrange(10_000):05d}",
                "category": rng.choice(CATEGORIES),
                "price": round(rng.uniform(3, 120), 2),
                "quantity": rng.randint(1, 3),
            }
            for _ in range(rng.randint(1, 3))
        ]
        total = round(sum(p["price"] * p["quantity"] for p in products), 2)
        return {
            "order_id": f"ord-{rng.randrange(10**9)}",
            "total": total,
            "revenue": round(total * 0.8, 2),
            "currency": "EUR",
            "coupon": rng.choice([None, "SUMMER10", "WELCOME"]),
            "products": products,
        }
    if name == "Product Viewed":
        return {
            "product_id": f"sku-{rng.randrange(10_000):05d}",
            "category": rng.choice(CATEGORIES),
            "name": f"Product {rng.randrange(1000)}",
            "price": round(rng.uniform(3, 120), 2),
            "currency": "EUR",
        }
    if name == "Signed In":
        return {"method": rng.choice(["password", "google", "sso"]), "remember_me": True}
    if name == "Subscription Renewed":
        return {
            "plan": rng.choice(PLANS),
            "amount": rng.choice([19, 49, 99, 499]),
            "currency": "EUR",
            "period": rng.choice(["month", "year"]),
        }
    return {"feature": rng.choice(["export", "share", "search", "report"]), "count": 1}


def track_message(rng: random.Random, now: dt.datetime) -> dict:
    """A track call as Segment's libraries send it, its messageId still a placeholder."""
    name = rng.choice(EVENTS)
    user = rng.randrange(50_000)
    return {
        "type": "track",
        "event": name,
        "userId": f"user-{user}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "properties": _properties(rng, name),
        "context": {
            "library": {"name": "analytics-python", "version": "2.3.4"},
            "ip": f"203.0.113.{rng.randrange(1, 255)}",
            "locale": rng.choice(["en-US", "fr-FR", "de-DE"]),
            "timezone": rng.choice(["Europe/Paris", "America/New_York", "Asia/Tokyo"]),
            "userAgent": rng.choice(USER_AGENTS),
        },
        "integrations": {},
        "messageId": MID,
        "timestamp": _iso(now - dt.timedelta(milliseconds=rng.randrange(50, 5000))),
    }


class Payloads:
    """Pre-serialised request bodies; every use gets fresh uuid4 messageIds spliced in.

    Serialising 100 messages per request would cost the load generator more CPU than the
    servers' JSON parsing; splicing ids into pre-split templates costs ~1 us per event.
    """

    def __init__(self, batch_size: int, seed: int = 42, templates: int = 64) -> None:
        rng = random.Random(seed)
        now = dt.datetime.now(dt.UTC)
        self.batch_size = batch_size
        self._batches = []
        for _ in range(templates):
            body = {
                "batch": [track_message(rng, now) for _ in range(batch_size)],
                "sentAt": _iso(now),
            }
            self._batches.append(self._split(body, batch_size))
        self._tracks = []
        for _ in range(templates * 4):
            body = {**track_message(rng, now), "sentAt": _iso(now)}
            self._tracks.append(self._split(body, 1))
        self._next_batch = 0
        self._next_track = 0

    @staticmethod
    def _split(body: dict, expected: int) -> list[bytes]:
        parts = json.dumps(body, separators=(",", ":")).encode().split(MID_BYTES)
        if len(parts) != expected + 1:
            raise ValueError("the messageId placeholder appears in a generated value")
        return parts

    @staticmethod
    def _fill(parts: list[bytes]) -> bytes:
        out = [parts[0]]
        for part in parts[1:]:
            out.append(str(uuid.uuid4()).encode())
            out.append(part)
        return b"".join(out)

    def batch(self) -> bytes:
        self._next_batch = (self._next_batch + 1) % len(self._batches)
        return self._fill(self._batches[self._next_batch])

    def track(self) -> bytes:
        self._next_track = (self._next_track + 1) % len(self._tracks)
        return self._fill(self._tracks[self._next_track])

    def average_size(self, kind: str) -> int:
        pool = self._batches if kind == "batch" else self._tracks
        ids = 36 * (self.batch_size if kind == "batch" else 1)
        return sum(len(b"".join(p)) for p in pool) // len(pool) + ids


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port (reopened when the server closes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        if not reused:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        try:
            return await self._exchange(data)
        except _ClosedBeforeResponse:
            self.close()
            if not reused:
                raise
        # The server closed an idle kept-alive connection just before we used it: retry
        # once on a fresh one (the console deduplicates by messageId anyway).
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return await self._exchange(data)

    async def _exchange(self, data: bytes) -> tuple[int, bytes]:
        reader, writer = self.reader, self.writer
        if reader is None or writer is None:
            raise _ClosedBeforeResponse
        try:
            writer.write(data)
            await writer.drain()
            status_line = await reader.readline()
        except ConnectionError as exc:
            raise _ClosedBeforeResponse from exc
        if not status_line:
            raise _ClosedBeforeResponse
        status = int(status_line.split(None, 2)[1])
        length, chunked = None, False
        close = status_line.startswith(b"HTTP/1.0")
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            body = b"".join(chunks)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            close = True
        if close:
            self.close()
        return status, body


class _ClosedBeforeResponse(Exception):
    pass


@dataclass
class Sample:
    start: float
    end: float
    status: int  # 0: no HTTP answer (connection error or timeout)
    acknowledged: int


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    window_start: float = 0.0
    window_end: float = 0.0
    errors: Counter = field(default_factory=Counter)
    error_example: str = ""

    @property
    def measured(self) -> list[Sample]:
        """Requests started after the warm-up and before the deadline."""
        return [s for s in self.samples if self.window_start <= s.start < self.window_end]

    @property
    def acknowledged_in_window(self) -> int:
        """Events acknowledged by requests that ended after the warm-up (the CPU window)."""
        return sum(s.acknowledged for s in self.samples if s.end >= self.window_start)

    @property
    def acknowledged_total(self) -> int:
        """Every event a server acknowledged, warm-up included (what must be stored)."""
        return sum(s.acknowledged for s in self.samples)


def acknowledged_events(status: int, body: bytes) -> int:
    """Events a 200 answer says were stored: ``accepted`` (batch, floor) or 1 per new track."""
    if status != 200:
        return 0
    answer = json.loads(body)
    if "accepted" in answer:
        return int(answer["accepted"])
    return 0 if answer.get("duplicate") else 1


async def _client(
    port: int,
    head: Callable[[int], bytes],
    make_body: Callable[[], bytes],
    deadline: float,
    timeout: float,
    result: LoadResult,
) -> None:
    connection = Connection(port)
    try:
        while time.perf_counter() < deadline:
            body = make_body()
            await post(connection, head(len(body)) + body, timeout, result)
    finally:
        connection.close()


async def post(connection: Connection, data: bytes, timeout: float, result: LoadResult) -> None:
    """Send one request and add its sample, and its error if any, to ``result``."""
    start = time.perf_counter()
    try:
        status, answer = await asyncio.wait_for(connection.request(data), timeout)
        acknowledged = acknowledged_events(status, answer)
    except (OSError, EOFError, TimeoutError, _ClosedBeforeResponse, ValueError) as exc:
        connection.close()
        status, acknowledged = 0, 0
        result.errors[type(exc).__name__] += 1
        result.error_example = result.error_example or repr(exc)
    else:
        if status != 200:
            result.errors[f"HTTP {status}"] += 1
            result.error_example = result.error_example or answer[:300].decode("utf-8", "replace")
    result.samples.append(Sample(start, time.perf_counter(), status, acknowledged))


async def _run(
    port: int,
    path: str,
    write_key: str,
    make_body: Callable[[], bytes],
    clients: int,
    warmup: float,
    duration: float,
    timeout: float,
    on_window_start: Callable[[], None] | None,
) -> LoadResult:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    prefix = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nUser-Agent: console-ingest-bench/1\r\n"
        "Content-Length: "
    ).encode()

    def head(length: int) -> bytes:
        return prefix + str(length).encode() + b"\r\n\r\n"

    result = LoadResult()
    begin = time.perf_counter()
    result.window_start = begin + warmup
    result.window_end = result.window_start + duration
    if on_window_start is not None:
        delay = result.window_start - time.perf_counter()
        asyncio.get_running_loop().call_later(max(delay, 0.0), on_window_start)
    tasks = [
        asyncio.create_task(_client(port, head, make_body, result.window_end, timeout, result))
        for _ in range(clients)
    ]
    # Every request is bounded by ``timeout``, so this cannot hang; the outer bound is a
    # second guard.
    done, pending = await asyncio.wait(tasks, timeout=warmup + duration + timeout + 5)
    for task in pending:
        task.cancel()
    failures = [task.exception() for task in done if task.exception() is not None]
    if failures:
        raise failures[0]
    return result


def run_load(
    port: int,
    path: str,
    write_key: str,
    make_body: Callable[[], bytes],
    *,
    clients: int,
    warmup: float,
    duration: float,
    timeout: float = 30.0,
    on_window_start: Callable[[], None] | None = None,
) -> LoadResult:
    """``clients`` concurrent clients POST to ``path`` for ``warmup`` + ``duration`` seconds;
    ``on_window_start`` is called when the warm-up ends."""
    return asyncio.run(
        _run(port, path, write_key, make_body, clients, warmup, duration, timeout, on_window_start)
    )
