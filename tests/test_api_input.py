"""What the configuration API takes: JSON of the types its schema states, no NUL, complete
rules, ids in range; and what it answers when a URL matches nothing (JSON, as ever)."""

import pytest
import responses

from integrations.models import Integration, Source, WorkspaceMembership
from tests.traffic import deliver_due, send

INTEGRATIONS = "/api/v1/workspaces/acme/integrations/"
SOURCES = "/api/v1/workspaces/acme/sources/"


@pytest.fixture
def csm(member_client):
    return member_client(WorkspaceMembership.Role.CSM)


def hook_body(**fields):
    return {
        "name": "Hook",
        "kind": "webhook",
        "settings": {"url": "https://h.example/in"},
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 12),  # before: stored as "12"
        ("enabled", "yes"),  # before: true
        ("enabled", 1),
        ("event_mode", 3),
    ],
)
def test_values_of_the_wrong_json_type_are_refused(csm, field, value):
    response = csm.post(INTEGRATIONS, hook_body(**{field: value}), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][field] == [
        f"must be {'a boolean' if field == 'enabled' else 'a string'}"
    ]
    assert not Integration.objects.exists()


def test_nested_rules_are_strict_too(csm):
    body = hook_body(event_rules=[{"event": "Signed Up", "enabled": "false"}])
    response = csm.post(INTEGRATIONS, body, format="json")
    assert response.status_code == 400, response.content
    assert "event_rules" in response.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        hook_body(name="Ho\x00ok"),
        # Free-form settings: before, a 500 on PostgreSQL (jsonb cannot hold \u0000).
        hook_body(settings={"url": "https://h.example/in", "headers": {"X-A": "a\x00b"}}),
        hook_body(settings={"url": "https://h.example/in", "headers": {"X-\x00": "b"}}),
    ],
)
def test_nul_in_any_string_is_refused(csm, body):
    response = csm.post(INTEGRATIONS, body, format="json")
    assert response.status_code == 400, response.content
    assert "must not contain U+0000 (NUL)" in str(response.json()["errors"])
    assert not Integration.objects.exists()


def test_forms_are_not_taken(csm):
    response = csm.post(SOURCES, {"name": "Site"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not Source.objects.exists()


def test_a_patch_replacing_rules_needs_complete_rules(csm, webhook_integration):
    # Before: a 500 (KeyError) when a rule came without its name.
    response = csm.patch(
        f"{INTEGRATIONS}{webhook_integration.pk}/",
        {"property_rules": [{"enabled": False}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"]["property_rules"] == ["every rule needs its name"]


def test_the_tester_takes_an_empty_event_as_an_event(csm, webhook_integration):
    # Before: a 500 (the empty event was taken for no event, then no sample was found).
    response = csm.post(
        f"{INTEGRATIONS}{webhook_integration.pk}/test/", {"event": {}}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_type"  # the message's type is missing


@pytest.mark.parametrize("value", ["-1", "0", "abc", "²", str(2**63), "9" * 5000])
def test_an_integration_filter_must_be_an_id(csm, source, webhook_integration, value):
    # Before: "²" (a digit to str.isdigit) and 2**63 gave 500s.
    send(source, type="track", userId="u1", event="E", messageId="m1")
    response = csm.get("/api/v1/workspaces/acme/deliveries/", {"integration": value})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_filter"


def test_an_integration_filter_in_range(csm, source, webhook_integration):
    with responses.RequestsMock() as vendor:
        vendor.post("https://hooks.example.com/in", status=200)
        send(source, type="track", userId="u1", event="E", messageId="m1")
        deliver_due()
    response = csm.get(
        "/api/v1/workspaces/acme/deliveries/", {"integration": str(webhook_integration.pk)}
    )
    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workspaces/not%20a%20slug/sources/",  # the slug pattern does not match
        "/api/v1/nothing-here/",
        "/v1/nothing/",
    ],
)
def test_urls_matching_no_route_get_a_json_404(csm, path):
    response = csm.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_other_urls_keep_the_html_404(client, db):
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
