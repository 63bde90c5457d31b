"""Open-loop load at a set rate on loadgen's connections, and bodies whose events can be
recognised at a fake vendor.

``loadgen.run_load`` sends as fast as the server answers (closed loop), which measures
the most a server takes. The end-to-end and prune benchmarks need a set rate instead:
``PacedLoad`` sends request *k* at ``start + k / rate`` on up to ``clients`` connections
at once (late requests go at once, so a slow answer delays no other client), in a thread
of its own, until its duration ends or it is stopped; the samples are read while it runs.

``TaggedPayloads`` are loadgen's bodies with each message's id written twice: as its
``messageId`` and as ``properties.bench_id``, which every destination sends on (the
webhook sends the whole message, Customer.io the properties as event data), so that
``benchmarks/fake_vendor.py`` can tell which events a request carried.
"""

import asyncio
import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable

from benchmarks.loadgen import (
    HOST,
    MID,
    MID_BYTES,
    Connection,
    LoadResult,
    Payloads,
    Sample,
    post,
)


class TaggedPayloads(Payloads):
    """Bodies whose messages carry their ``messageId`` again in ``properties.bench_id``."""

    @staticmethod
    def _split(body: dict, expected: int) -> list[bytes]:
        for message in body.get("batch", [body]):
            message["properties"]["bench_id"] = MID
        parts = json.dumps(body, separators=(",", ":")).encode().split(MID_BYTES)
        if len(parts) != 2 * expected + 1:
            raise ValueError("the messageId placeholder appears in a generated value")
        return parts

    @staticmethod
    def _fill(parts: list[bytes]) -> bytes:
        out = [parts[0]]
        for position in range(1, len(parts), 2):
            message_id = str(uuid.uuid4()).encode()
            out += [message_id, parts[position], message_id, parts[position + 1]]
        return b"".join(out)

    def average_size(self, kind: str) -> int:
        return super().average_size(kind) + 36 * (self.batch_size if kind == "batch" else 1)


def tagged_message(message: dict) -> dict:
    """A message (``loadgen.track_message``) with a fresh id in both places."""
    message_id = str(uuid.uuid4())
    return {
        **message,
        "messageId": message_id,
        "properties": {**message["properties"], "bench_id": message_id},
    }


class PacedLoad:
    """``rate`` requests per second to ``path`` for ``duration`` seconds (or until
    ``stop``), in a thread; ``samples`` grows as answers come."""

    def __init__(
        self,
        port: int,
        path: str,
        write_key: str,
        make_body: Callable[[], bytes],
        *,
        rate: float,
        duration: float = float("inf"),
        clients: int = 16,
        timeout: float = 30.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.port, self.path, self.make_body = port, path, make_body
        self.rate, self.duration, self.clients, self.timeout = rate, duration, clients, timeout
        auth = base64.b64encode(f"{write_key}:".encode()).decode()
        self._prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: application/json\r\nUser-Agent: console-paced-bench/1\r\n"
            "Content-Length: "
        ).encode()
        self.result = LoadResult()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # -- control ------------------------------------------------------------------------

    def start(self) -> "PacedLoad":
        self._thread = threading.Thread(target=self._main, name="paced-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        """Stop sending; wait for the requests in flight (each bounded by ``timeout``)."""
        self._stopping.set()
        return self.join()

    def join(self) -> LoadResult:
        if self._thread is not None:
            self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self.result

    # -- reading while it runs ----------------------------------------------------------

    def samples(self) -> list[Sample]:
        return list(self.result.samples)

    def acknowledged(self) -> int:
        """Events acknowledged so far (answers received)."""
        return sum(s.acknowledged for s in self.samples())

    # -- the load -----------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # handed to the caller by join()
            self._failure = exc

    async def _run(self) -> None:
        begin = time.perf_counter()
        self.result.window_start = begin
        self.result.window_end = begin + self.duration
        slots = itertools.count()
        tasks = [asyncio.create_task(self._client(begin, slots)) for _ in range(self.clients)]
        await asyncio.gather(*tasks)

    async def _client(self, begin: float, slots: "itertools.count[int]") -> None:
        connection = Connection(self.port)
        result = self.result
        try:
            while not self._stopping.is_set():
                at = begin + next(slots) / self.rate
                if at >= result.window_end:
                    return
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopping.is_set():
                    return
                body = self.make_body()
                data = self._prefix + str(len(body)).encode() + b"\r\n\r\n" + body
                await post(connection, data, self.timeout, result)
        finally:
            connection.close()
