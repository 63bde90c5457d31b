"""Field mappings through the configuration API: validated against the kind's fields,
replaced as a whole, listed with the fields a kind offers."""

from integrations.models import Integration


def url(workspace, pk=None) -> str:
    base = f"/api/v1/workspaces/{workspace.slug}/integrations/"
    return f"{base}{pk}/" if pk else base


SETTINGS = {"app_key": "cz-key"}


def test_create_with_mappings_and_read_them_back(member_client, workspace):
    client = member_client()
    mappings = {
        "contact_external_id": "traits.email || $profile.traits.email",
        "account_name": "traits.company.name",
    }
    payload = {"name": "CZ", "kind": "churnzero", "settings": SETTINGS, "field_mappings": mappings}
    response = client.post(url(workspace), payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["field_mappings"] == mappings
    fields = {f["name"]: f for f in body["mapped_fields"]}
    assert fields["event_description"]["preset"] == "properties.description"
    assert fields["account_name"]["calls"] == ["group", "identify"]
    assert Integration.objects.get().field_mappings == mappings


def test_bad_mappings_are_a_400_naming_each_field(member_client, workspace):
    payload = {
        "name": "CZ",
        "kind": "churnzero",
        "settings": SETTINGS,
        "field_mappings": {"nope": "userId", "account_name": "{{ traits.x "},
    }
    response = member_client().post(url(workspace), payload, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]["field_mappings"]
    assert set(errors) == {"nope", "account_name"}
    assert "unknown field for ChurnZero" in errors["nope"][0]
    assert not Integration.objects.exists()


def test_patch_replaces_the_mappings_and_leaves_them_alone_otherwise(member_client, workspace):
    client = member_client()
    payload = {
        "name": "CZ",
        "kind": "churnzero",
        "settings": SETTINGS,
        "field_mappings": {"account_name": "traits.company.name"},
    }
    pk = client.post(url(workspace), payload, format="json").json()["id"]
    client.patch(url(workspace, pk), {"name": "Renamed"}, format="json")
    assert Integration.objects.get().field_mappings == {"account_name": "traits.company.name"}
    response = client.patch(
        url(workspace, pk), {"field_mappings": {"contact_email": "traits.email"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Integration.objects.get().field_mappings == {"contact_email": "traits.email"}
