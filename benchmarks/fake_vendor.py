"""A fake vendor for the benchmarks: a bare asyncio HTTP/1.1 server in its own process.

    vendor = FakeVendor(delay_ms=1).start()
    ... vendor.url("/hook") ...
    vendor.stats()      # requests, request body bytes, events seen, by path
    vendor.arrivals(0)  # [(bench id, unix time of its first arrival), ...]
    vendor.stop()

Every request to a path outside ``/_bench/`` is answered ``200 {}`` after ``delay_ms``
(keep-alive, ``Content-Length`` bodies), counted with the bytes of its body, and its body
is searched for ``"bench_id": "<uuid>"``: the id the benchmarks put in each event's
properties (``benchmarks/paced.py``), which both a webhook's body and Customer.io's event
data carry. The first arrival of each id is kept with its wall-clock time (comparable
with the database's ``received_at`` on the same machine); later ones count as
duplicates. ``GET /_bench/stats``, ``/_bench/arrivals?from=N`` and
``/_bench/sample?path=P`` (the last body posted to P) answer the benchmark process.

A bare asyncio server rather than ``http.server``: its CPU cost per request is a fraction,
so the machine's cores go to what is measured. It listens on 127.0.0.1 only.
"""

import json
import multiprocessing
import re
import signal
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

from benchmarks.loadgen import HOST

BENCH_ID = re.compile(rb'"bench_id":\s*"([0-9a-f-]{36})"')
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _State:
    def __init__(self) -> None:
        self.requests = 0
        self.body_bytes = 0
        self.paths: dict[str, list[int]] = {}  # path: [requests, body bytes]
        self.first_arrival: dict[bytes, float] = {}
        self.order: list[bytes] = []
        self.duplicates = 0
        self.samples: dict[str, bytes] = {}

    def record(self, path: str, body: bytes) -> None:
        now = time.time()
        self.requests += 1
        self.body_bytes += len(body)
        counts = self.paths.setdefault(path, [0, 0])
        counts[0] += 1
        counts[1] += len(body)
        self.samples[path] = body
        for match in BENCH_ID.finditer(body):
            bench_id = match.group(1)
            if bench_id in self.first_arrival:
                self.duplicates += 1
            else:
                self.first_arrival[bench_id] = now
                self.order.append(bench_id)

    def control(self, target: str) -> bytes:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        if parts.path == "/_bench/stats":
            return json.dumps(
                {
                    "requests": self.requests,
                    "body_bytes": self.body_bytes,
                    "events": len(self.order),
                    "duplicates": self.duplicates,
                    "paths": {
                        path: {"requests": counts[0], "body_bytes": counts[1]}
                        for path, counts in self.paths.items()
                    },
                }
            ).encode()
        if parts.path == "/_bench/arrivals":
            start = int(query.get("from", ["0"])[0])
            return json.dumps(
                [[i.decode(), self.first_arrival[i]] for i in self.order[start:]]
            ).encode()
        if parts.path == "/_bench/sample":
            return self.samples.get(query.get("path", [""])[0], b"")
        return b""


def _serve(port_queue: "multiprocessing.Queue[int]", delay: float) -> None:
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the benchmark's to handle
    state = _State()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                target = head.split(b" ", 2)[1].decode()
                if target.startswith("/_bench/"):
                    answer = state.control(target)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
                else:
                    if delay:
                        await asyncio.sleep(delay)
                    state.record(urlsplit(target).path, body)
                    writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, HOST, 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class FakeVendor:
    """One fake vendor process; stopped by its own pid."""

    def __init__(self, delay_ms: float = 1.0) -> None:
        self.delay_ms = delay_ms
        self.process: multiprocessing.Process | None = None
        self.port = 0

    def start(self) -> "FakeVendor":
        ports: multiprocessing.Queue[int] = multiprocessing.Queue()
        self.process = multiprocessing.Process(
            target=_serve, args=(ports, self.delay_ms / 1000), daemon=True
        )
        self.process.start()
        self.port = ports.get(timeout=10)
        return self

    @property
    def pid(self) -> int:
        if self.process is None or self.process.pid is None:
            raise RuntimeError("the fake vendor is not running")
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base_url + path, timeout=30) as answer:  # noqa: S310 (127.0.0.1)
            return answer.read()

    def stats(self) -> dict:
        return json.loads(self._get("/_bench/stats"))

    def arrivals(self, start: int = 0) -> list[tuple[str, float]]:
        """First arrivals of bench ids, in order, from the ``start``-th one on."""
        return [(i, t) for i, t in json.loads(self._get(f"/_bench/arrivals?from={start}"))]

    def sample(self, path: str) -> bytes:
        """The last request body posted to ``path``."""
        return self._get(f"/_bench/sample?path={path}")

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self.process = None
