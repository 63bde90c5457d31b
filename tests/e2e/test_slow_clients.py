"""A slow client cannot starve ingest: the web process as production runs it (gunicorn with
``console/gunicorn.conf.py``, here with two workers, as in the report) keeps answering
while two clients hold requests whose bodies they never finish sending. With sync
workers (``--worker-class sync --threads 1``), those two held both workers and every
other client waited."""

import base64
import socket

import pytest

from tests.e2e.harness import child_database_url
from tests.e2e.web_process import WebProcess, local_session

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLIENT_TIMEOUT = 20.0  # a bound on the test, not a measurement


def half_sent_request(port: int, write_key: str) -> socket.socket:
    """A track call that declares 1,000 bytes of body and sends 10 of them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    credentials = base64.b64encode(f"{write_key}:".encode()).decode()
    head = (
        "POST /v1/track HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Basic {credentials}\r\n"
        "Content-Length: 1000\r\n"
        "\r\n"
    )
    sock.sendall(head.encode() + b'{"userId":')
    return sock


def test_two_half_sent_requests_do_not_stall_a_third_client(source, tmp_path):
    web = WebProcess(child_database_url(), tmp_path / "web.log", "--workers", "2")
    stalled = []
    try:
        stalled = [half_sent_request(web.port, source.write_key) for _ in range(2)]
        http = local_session()
        for number in range(3):
            response = http.post(
                f"{web.url}/v1/track",
                json={"userId": "u1", "event": "Signed Up", "messageId": f"m{number}"},
                auth=(source.write_key, ""),
                timeout=CLIENT_TIMEOUT,
            )
            assert response.status_code == 200, response.text
        assert source.workspace.events.count() == 3
    finally:
        for sock in stalled:
            sock.close()
        web.stop()
