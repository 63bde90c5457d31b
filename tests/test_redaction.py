"""Secrets stay out of the delivery log in the forms a vendor echoes them in: base64 of
the Basic-auth credentials (Segment, ChartMogul, Customer.io) and URL-encoded."""

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest
import responses

from integrations.credentials import SENSITIVE_FIELD_PARTS, SENSITIVE_FIELDS
from integrations.delivery.redact import REDACTED, Redactor
from integrations.models import Delivery, Integration
from tests.traffic import deliver_due, exchanges_of, send


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET = "sk_live+4f/9=Zq"  # characters base64 and URL encodings change


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SECRET, id="as typed"),
        pytest.param(b64(SECRET), id="base64"),
        pytest.param(b64(f"{SECRET}:"), id="base64 user"),
        pytest.param(b64(f":{SECRET}"), id="base64 password"),
        pytest.param(b64(f"{SECRET}:{SECRET}"), id="base64 user and password"),
        pytest.param(b64(f"{SECRET}:").rstrip("="), id="base64 unpadded"),
        pytest.param(
            base64.urlsafe_b64encode(f"{SECRET}:".encode()).decode(), id="base64 url-safe"
        ),
        pytest.param(quote(SECRET, safe=""), id="url-encoded"),
        pytest.param(quote_plus(SECRET), id="form-encoded"),
        pytest.param(quote(b64(f"{SECRET}:"), safe=""), id="url-encoded base64"),
        pytest.param(quote_plus(b64(f"{SECRET}:")), id="form-encoded base64"),
    ],
)
def test_every_encoded_form_is_redacted(form):
    redactor = Redactor([SECRET])
    echoed = f'{{"echo": "Authorization: Basic {form}", "tail": 1}}'
    redacted = redactor.text(echoed)
    assert form not in redacted
    assert redacted == f'{{"echo": "Authorization: Basic {REDACTED}", "tail": 1}}'


def test_a_public_setting_paired_with_a_secret_is_redacted_as_a_credential():
    redactor = Redactor.for_settings({"site_id": "site123", "region": "us"}, {"api_key": "key456"})
    echoed = f"Basic {b64('site123:key456')}"
    assert redactor.text(echoed) == f"Basic {REDACTED}"
    # The public setting alone stays readable.
    assert redactor.text("site id site123") == "site id site123"


def test_short_values_are_not_treated_as_secrets():
    assert Redactor(["abc"]).text("abc abcd") == "abc abcd"


def echo(request):
    """A vendor that reflects the request: headers, plain and URL-encoded."""
    headers = dict(request.headers)
    body = {"headers": headers, "quoted": quote(headers.get("Authorization", ""), safe="")}
    return 400, {"Content-Type": "application/json"}, json.dumps(body)


def make(workspace, kind: str, settings: dict) -> Integration:
    integration = Integration(workspace=workspace, name=kind, kind=kind)
    integration.set_settings(settings)
    integration.save()
    return integration


VENDORS = {
    "segment": ({"write_key": "seg-write-key-1234"}, "seg-write-key-1234:"),
    "chartmogul": (
        {"mode": "rest", "api_key": "cm-api-key-5678", "data_source_uuid": "ds_1"},
        "cm-api-key-5678:",
    ),
    "customerio": (
        {"site_id": "site-9", "api_key": "cio-api-key-0000", "region": "us"},
        "site-9:cio-api-key-0000",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(VENDORS))
@responses.activate
def test_a_vendor_echoing_its_basic_auth_header_leaves_no_credential_in_the_log(
    source, workspace, kind
):
    settings, credentials = VENDORS[kind]
    integration = make(workspace, kind, settings)
    for method in ("GET", "POST", "PUT", "PATCH"):
        responses.add_callback(method, re.compile(r"https://.*"), callback=echo)
    send(
        source,
        type="identify",
        userId="u1",
        messageId="m1",
        traits={"email": "a@b.example"},
        context={"groupId": "acme"},  # ChartMogul: a contact of the user's company
    )

    deliver_due(integration)

    # The vendor did see the credential...
    sent = responses.calls[0].request.headers["Authorization"]
    assert sent == f"Basic {b64(credentials)}"
    # ...and the log keeps none of it, in any form.
    (delivery,) = Delivery.objects.filter(integration=integration)
    stored = json.dumps(exchanges_of(delivery)) + delivery.last_error
    secret = credentials.split(":")[1] or credentials.split(":")[0]
    for form in (secret, b64(credentials), quote(b64(credentials), safe="")):
        assert form not in stored, f"{form} in {stored}"
    assert REDACTED in json.loads(exchanges_of(delivery)[0]["response_body"])["quoted"]


def test_every_credential_field_name_holds_a_part_the_body_check_looks_for():
    for name in SENSITIVE_FIELDS:
        assert any(part in name for part in SENSITIVE_FIELD_PARTS), name


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"user": {"Password": "hunter22"}}', id="another case"),
        pytest.param('{"user": {"p\\u0061ssword": "hunter22"}}', id="escaped in the key"),
        pytest.param('{"user": {"API_KEY": "hunter22"}, "name": "é"}', id="not ascii"),
        pytest.param('[{"access_token": "hunter22"}]', id="in a list"),
    ],
)
def test_credential_fields_in_a_body_are_redacted_however_written(body):
    redacted = Redactor([]).body(body)
    assert "hunter22" not in redacted and REDACTED in redacted


def test_a_body_without_credentials_is_stored_as_sent():
    body = '{"event": "Signed Up", "properties": {"plan": "pro", "seats": 3}}'
    assert Redactor(["sk_live_abcdef"]).body(body) is body
