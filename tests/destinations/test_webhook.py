"""The generic webhook: fixtures, header-safe ids, the signing schemes, the connection test
and the credentials within its settings."""

import base64
import hashlib
import hmac
import http.server
import json
import threading

import pytest
import requests
import responses
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.delivery import planning
from integrations.delivery.redact import REDACTED, Redactor
from integrations.destinations.context import PlanContext
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.destinations.webhook import Webhook, webhook_id
from integrations.models import Delivery, Integration
from tests.destinations.fixtures import RECEIVED_AT, cases, check_case
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# messageIds the tracking API accepts that are no valid header value as they are.
AWKWARD_IDS = {
    "emoji": "order-🎉-1",
    "rtl_mark": "\u200fm-1",
    "bom": "\ufeffm-1",
    "u_ffff": "m-1\uffff",
    "leading_space": " m-1",
    "trailing_space": "m-1 ",
    "crlf": "m-1\r\nX-Injected: yes",
    "latin1": "café-1",
}


@pytest.mark.parametrize("path", cases("webhook"))
def test_fixture(path):
    check_case("webhook", path)


def config_of(**settings) -> IntegrationConfig:
    """The config a delivery plans from, built as the worker builds it."""
    integration = Integration(kind="webhook")
    integration.set_settings({"url": URL, **settings})
    return planning.integration_config(integration)


def event(message_id: str = "m1") -> EventData:
    payload = {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": message_id}
    return EventData(message_id=message_id, type="track", timestamp=RECEIVED_AT, payload=payload)


def planned(config: IntegrationConfig, message_id: str = "m1"):
    (request,) = Webhook.plan(config, [event(message_id)], PlanContext()).requests
    return request


# --- webhook-id ---------------------------------------------------------------------


@pytest.mark.parametrize("message_id", ["m1", "ajs-next-1701234567-abc", "a b", "x.y:z/1"])
def test_printable_ascii_ids_are_the_webhook_id(message_id):
    assert webhook_id(message_id) == message_id


@pytest.mark.parametrize("message_id", AWKWARD_IDS.values(), ids=AWKWARD_IDS.keys())
def test_other_ids_get_a_stable_header_safe_id(message_id):
    derived = webhook_id(message_id)
    assert derived == webhook_id(message_id)
    assert derived.startswith("msg_") and len(derived) == len("msg_") + 52
    assert derived.isascii() and derived.replace("_", "").isalnum()
    others = {webhook_id(other) for other in AWKWARD_IDS.values() if other != message_id}
    assert derived not in others


class Receiver(http.server.BaseHTTPRequestHandler):
    """A vendor on 127.0.0.1 that keeps the headers it gets and answers 200."""

    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_port}/in"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("message_id", AWKWARD_IDS.values(), ids=AWKWARD_IDS.keys())
def test_awkward_ids_go_over_a_real_socket_and_verify(receiver, message_id):
    request = planned(config_of(secret=WHSEC), message_id)
    response = requests.post(
        receiver, data=request.body.encode(), headers=request.headers, timeout=10
    )
    assert response.status_code == 200
    ((headers, body),) = Receiver.received
    assert headers["webhook-id"] == webhook_id(message_id)
    payload = StandardWebhook(WHSEC).verify(body, headers)
    assert payload["messageId"] == message_id


@pytest.mark.django_db
@pytest.mark.parametrize("message_id", AWKWARD_IDS.values(), ids=AWKWARD_IDS.keys())
@responses.activate
def test_every_accepted_message_id_is_delivered_with_one_id_on_every_retry(
    source, webhook_integration, message_id
):
    responses.post("https://hooks.example.com/in", status=503)
    responses.post("https://hooks.example.com/in", status=200)
    result = send(source, type="track", userId="u1", event="Signed Up", messageId=message_id)
    assert [event.message_id for event in result.accepted] == [message_id]
    deliver_due(webhook_integration)
    Delivery.objects.update(next_attempt_at=timezone.now())  # the retry is due now
    deliver_due(webhook_integration)

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempt_count) == (Delivery.Status.DELIVERED, 2)
    secret = webhook_integration.secret_settings["secret"]
    sent = [call.request for call in responses.calls]
    assert len(sent) == 2
    ids = {request.headers["webhook-id"] for request in sent}
    assert ids == {webhook_id(message_id)}
    for request in sent:
        # A header every HTTP stack sends as is: printable ASCII, nothing to trim.
        value = request.headers["webhook-id"]
        assert value.isascii() and value.isprintable() and value == value.strip()
        payload = StandardWebhook(secret).verify(request.body, dict(request.headers))
        assert payload["messageId"] == message_id


# --- signing ------------------------------------------------------------------------


def test_standard_webhooks_is_the_default_and_verifies():
    config = config_of(secret=WHSEC)
    assert config["signing"] == "standard"
    request = planned(config)
    assert StandardWebhook(WHSEC).verify(request.body, dict(request.headers))["messageId"] == "m1"
    assert "X-Signature" not in request.headers
    # And by hand, as the specification writes it: base64 of the HMAC-SHA256, keyed by the
    # secret's base64-decoded bytes, of "<webhook-id>.<webhook-timestamp>.<body>".
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.{request.body}"
    )
    digest = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    assert f"v1,{base64.b64encode(digest).decode()}" in request.headers["webhook-signature"].split()


def test_segment_signing_is_the_hex_hmac_sha1_of_the_body():
    request = planned(config_of(signing="segment", secret="my shared secret"))
    expected = hmac.new(b"my shared secret", request.body.encode(), hashlib.sha1).hexdigest()
    assert request.headers["X-Signature"] == expected
    assert not {"webhook-id", "webhook-signature", "webhook-timestamp"} & set(request.headers)
    assert json.loads(request.body)["messageId"] == "m1"


def test_no_signing_sends_no_signature_headers():
    request = planned(config_of(signing="none"))
    signatures = {"X-Signature", "webhook-id", "webhook-signature", "webhook-timestamp"}
    assert not signatures & set(request.headers)
    assert request.headers["Content-Type"] == "application/json"


def test_each_scheme_generates_a_secret_that_suits_it():
    standard = Webhook.clean_settings({"url": URL})
    assert standard.secrets["secret"].startswith("whsec_")
    assert standard.generated == {"secret": standard.secrets["secret"]}
    segment = Webhook.clean_settings({"url": URL, "signing": "segment"})
    assert len(segment.secrets["secret"]) >= 32
    assert segment.generated == {"secret": segment.secrets["secret"]}
    unsigned = Webhook.clean_settings({"url": URL, "signing": "none"})
    assert "secret" not in unsigned.secrets and unsigned.generated == {}


def test_the_secret_is_checked_per_scheme():
    with pytest.raises(ValidationError) as error:
        Webhook.clean_settings({"url": URL, "secret": "not-a-whsec"})
    assert "whsec_" in error.value.message_dict["secret"][0]
    # Segment's shared secret is any string; unsigned keeps a secret it is given.
    for signing in ("segment", "none"):
        cleaned = Webhook.clean_settings({"url": URL, "signing": signing, "secret": "any"})
        assert cleaned.secrets["secret"] == "any" and cleaned.generated == {}
    with pytest.raises(ValidationError) as error:
        Webhook.clean_settings({"url": URL, "signing": "hmac"})
    assert "standard, segment, none" in error.value.message_dict["signing"][0]


def test_switching_to_standard_keeps_a_stored_whsec_and_refuses_another_stored_secret():
    kept = Webhook.clean_settings({"url": URL}, {"secret": WHSEC})
    assert kept.secrets["secret"] == WHSEC and kept.generated == {}
    with pytest.raises(ValidationError) as error:
        Webhook.clean_settings({"url": URL, "signing": "standard"}, {"secret": "shared"})
    assert "stored secret" in error.value.message_dict["secret"][0]


# --- connection test ----------------------------------------------------------------


def test_connection_test_is_a_signed_ping_with_the_custom_headers():
    config = config_of(secret=WHSEC, headers={"Authorization": "Bearer t0k3n"})
    request = Webhook.connection_test(config)
    assert (request.method, request.url, request.covers) == ("POST", URL, ())
    body = StandardWebhook(WHSEC).verify(request.body, dict(request.headers))
    assert body["type"] == "ping"
    assert body["messageId"].startswith("ping_") and body["timestamp"]
    assert request.headers["webhook-id"] == body["messageId"]
    assert request.headers["Authorization"] == "Bearer t0k3n"


def test_connection_test_follows_the_scheme_and_the_api_base_url():
    integration = Integration(kind="webhook", api_base_url="https://proxy.example.com/hook")
    integration.set_settings({"url": URL, "signing": "segment", "secret": "s3cret"})
    request = Webhook.connection_test(planning.integration_config(integration))
    assert request.url == "https://proxy.example.com/hook"
    expected = hmac.new(b"s3cret", request.body.encode(), hashlib.sha1).hexdigest()
    assert request.headers["X-Signature"] == expected


# --- credentials in the settings ----------------------------------------------------

HEADERS = {"Authorization": "Bearer header-token-1234", "X-Api-Key": "key-5678", "X-Team": "cs"}
CREDENTIAL_URL = "https://hook-user:hook-pass@hooks.example.com:8443/in?api_key=qk-9012&keep=1"


def test_header_values_and_url_credentials_are_secret_settings():
    cleaned = Webhook.clean_settings({"url": CREDENTIAL_URL, "secret": WHSEC, "headers": HEADERS})
    assert cleaned.public == {
        "url": "https://********@hooks.example.com:8443/in?api_key=********&keep=1",
        "signing": "standard",
        "headers": ["Authorization", "X-Api-Key", "X-Team"],
    }
    assert cleaned.secrets == {"url": CREDENTIAL_URL, "secret": WHSEC, "headers": HEADERS}
    text = json.dumps(cleaned.public)
    for value in ("header-token-1234", "key-5678", "hook-user", "hook-pass", "qk-9012"):
        assert value not in text


def test_the_request_sent_is_unchanged():
    request = planned(config_of(url=CREDENTIAL_URL, secret=WHSEC, headers=HEADERS))
    assert request.url == CREDENTIAL_URL
    assert {name: request.headers[name] for name in HEADERS} == HEADERS


def test_masked_values_submitted_back_keep_the_stored_ones():
    first = Webhook.clean_settings({"url": CREDENTIAL_URL, "secret": WHSEC, "headers": HEADERS})
    # What the pages show, submitted back as is: nothing changes.
    again = Webhook.clean_settings(first.public, first.secrets)
    assert (again.public, again.secrets) == (first.public, first.secrets)
    # Another path with the credentials left masked keeps them; a new value replaces one.
    edited = Webhook.clean_settings(
        {
            "url": "https://********@hooks.example.com:8443/v2?api_key=********&keep=1",
            "headers": {"Authorization": "", "X-Api-Key": "********", "X-Team": "success"},
        },
        first.secrets,
    )
    assert edited.secrets["url"] == (
        "https://hook-user:hook-pass@hooks.example.com:8443/v2?api_key=qk-9012&keep=1"
    )
    assert edited.secrets["headers"] == {**HEADERS, "X-Team": "success"}


def test_a_header_left_out_is_removed_and_headers_left_out_are_kept():
    stored = Webhook.clean_settings({"url": URL, "headers": HEADERS}).secrets
    removed = Webhook.clean_settings({"url": URL, "headers": ["X-Team"]}, stored)
    assert removed.secrets["headers"] == {"X-Team": "cs"}
    assert removed.public["headers"] == ["X-Team"]
    kept = Webhook.clean_settings({"url": URL}, stored)
    assert kept.secrets["headers"] == HEADERS


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"headers": {"X-New": ""}}, "X-New: give its value"),
        ({"url": "https://********@hooks.example.com/in"}, "user name and password"),
        ({"url": "https://hooks.example.com/in?token=********"}, "token again"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "listed twice"),
    ],
)
def test_a_masked_value_without_a_stored_one_is_refused(settings, problem):
    with pytest.raises(ValidationError) as error:
        Webhook.clean_settings({"url": URL, **settings}, {"secret": WHSEC})
    assert problem in json.dumps(error.value.message_dict)


def test_the_delivery_log_still_redacts_secret_header_values_and_url_credentials():
    integration = Integration(kind="webhook")
    integration.set_settings({"url": CREDENTIAL_URL, "secret": WHSEC, "headers": HEADERS})
    redactor = Redactor.for_settings(integration.settings, integration.secret_settings)
    request = planned(planning.integration_config(integration))
    logged = json.dumps(
        [
            redactor.url(request.url),
            redactor.headers(request.headers),
            redactor.text(f"echo header-token-1234 key-5678 qk-9012 hook-pass {WHSEC}"),
        ]
    )
    for value in ("header-token-1234", "key-5678", "qk-9012", "hook-pass", WHSEC):
        assert value not in logged
    assert redactor.headers(request.headers)["Authorization"] == REDACTED
    assert "keep=1" in redactor.url(request.url)
    # The mask is no secret: text holding it is logged as is.
    assert redactor.text("********") == "********"
