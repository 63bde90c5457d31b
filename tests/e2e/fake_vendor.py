"""A fake vendor API on 127.0.0.1: scripted answers per path, and a log of every request.

    with FakeVendor() as vendor:
        vendor.script("/hook", Reply(500), Reply(500), Reply(200))
        vendor.set_default("/slow", Reply(200, delay=5))
        ... vendor.url("/hook") ...
        vendor.requests_to("/hook")

Each path answers from its queue of scripted replies, then with its default (``Reply()``,
a 200, unless set). Requests are logged when they arrive, before any delay, so a test can
see a request the vendor is still "working on". Handlers run in daemon threads and their
delays end when the server stops, so stopping never waits for a sleeping handler.
"""

import collections
import contextlib
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer: wait ``delay`` seconds, then answer ``status``.

    With ``echo`` the body is the request as received (method, path, headers, body), as
    JSON: a vendor that reflects what it was sent, secrets included.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0
    echo: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the vendor received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    at: dt.datetime  # wall clock (UTC), comparable with the database's timestamps
    monotonic: float

    def json(self):
        return json.loads(self.body)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }


class FakeVendor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._scripts: dict[str, collections.deque[Reply]] = collections.defaultdict(
            collections.deque
        )
        self._defaults: dict[str, Reply] = {}
        self._log: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> "FakeVendor":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True  # handlers never hold up shutdown or the process
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeVendor":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake vendor is not running"
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- programming ------------------------------------------------------------------

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with these replies, in order."""
        with self._lock:
            self._scripts[path].extend(replies)

    def set_default(self, path: str, reply: Reply) -> None:
        """The answer to ``path`` once its script is used up."""
        with self._lock:
            self._defaults[path] = reply

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            script = self._scripts[path]
            return script.popleft() if script else self._defaults.get(path, Reply())

    # -- the request log --------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order of arrival."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def wait_for_requests(self, count: int, path: str | None = None, timeout: float = 20) -> None:
        """Block until at least ``count`` requests (to ``path``, or in all) have arrived."""

        def arrived() -> int:
            return sum(1 for r in self._log if path is None or r.path == path)

        with self._arrived:
            if not self._arrived.wait_for(lambda: arrived() >= count, timeout=timeout):
                raise AssertionError(
                    f"the fake vendor received {arrived()} requests to {path or 'any path'} "
                    f"within {timeout} s, expected {count}"
                )

    def _record(self, received: Received) -> None:
        with self._arrived:
            self._log.append(received)
            self._arrived.notify_all()


def _handler_for(vendor: FakeVendor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no keep-alive state between scripts.
        protocol_version = "HTTP/1.0"

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
            parts = urlsplit(self.path)
            received = Received(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers=dict(self.headers.items()),
                body=body,
                at=dt.datetime.now(dt.UTC),
                monotonic=time.monotonic(),
            )
            vendor._record(received)
            reply = vendor._next_reply(parts.path)
            if reply.delay and vendor._stopping.wait(reply.delay):
                return  # stopping: drop the connection unanswered
            payload = json.dumps(received.as_dict()).encode() if reply.echo else reply.body.encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.echo:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its read timeout): nothing to answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        def log_message(self, format: str, *args) -> None:
            pass  # quiet: the request log is the record

        def handle(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                super().handle()

    return Handler
