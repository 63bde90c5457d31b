"""The event tester previews mappings: the requests as mapped, and each field's mapping
and value for the event."""

from django.urls import reverse

from integrations.delivery import tester
from integrations.models import Integration
from tests.test_admin import text


def customerio(workspace, mappings: dict) -> Integration:
    integration = Integration(workspace=workspace, name="CIO", kind="customerio")
    integration.set_settings({"site_id": "s", "api_key": "cio-secret"})
    integration.set_field_mappings(mappings)
    integration.save()
    return integration


IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "traits": {"email": "ada@acme.example", "cio": {"plan": "pro"}, "noise": 1},
}


def test_the_preview_shows_each_fields_mapping_and_value(workspace):
    integration = customerio(
        workspace, {"person_id": "traits.email", "person_attributes": "traits.cio"}
    )
    preview = tester.preview(integration, IDENTIFY)
    assert '"identifiers":{"email":"ada@acme.example"}' in preview.requests[0]["body"]
    assert '"attributes":{"plan":"pro"}' in preview.requests[0]["body"]
    rows = {row["name"]: row for row in preview.fields}
    assert set(rows) == {"person_id", "person_attributes"}  # the fields identify reads
    assert rows["person_id"] == {
        "name": "person_id",
        "label": "Person identifier",
        "mapped": True,
        "mapping": "traits.email",
        "value": "ada@acme.example",
    }
    assert rows["person_attributes"]["value"] == {"plan": "pro"}


def test_unmapped_fields_show_their_preset(workspace):
    preview = tester.preview(
        customerio(workspace, {}), {**IDENTIFY, "type": "group", "groupId": "acme"}
    )
    rows = {row["name"]: row for row in preview.fields}
    assert rows["object_id"] == {
        "name": "object_id",
        "label": "Object id",
        "mapped": False,
        "mapping": "groupId",
        "value": "acme",
    }
    assert rows["person_id"]["value"] is None  # computed by Customer.io's destination
    assert rows["relationship_attributes"]["mapping"] == "not sent unless mapped"


def test_the_admin_tester_shows_the_field_mappings(csm, workspace):
    integration = customerio(workspace, {"person_id": "traits.email"})
    url = reverse("admin:integrations_integration_test", args=[integration.pk])
    page = text(
        csm.post(
            url, {"event": '{"type": "identify", "userId": "u1", "traits": {"email": "a@b.co"}}'}
        )
    )
    assert 'id="tester-fields"' in page
    assert "<code>traits.email</code>" in page
    assert "<code>a@b.co</code>" in page
