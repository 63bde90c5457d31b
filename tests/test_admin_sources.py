"""Sources in the admin: keys with copy buttons, the write-only webhook secret, and key
regeneration behind a confirmation, the new secret shown once."""

import re

from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from integrations.models import Source, Workspace
from tests.browser_form import form_data


def url(action: str, *args) -> str:
    return reverse(f"admin:integrations_source_{action}", args=args)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def keys(source: Source) -> tuple[str, str, str]:
    source.refresh_from_db()
    return source.write_key, source.webhook_token, source.webhook_secret


# --- the keys panel ------------------------------------------------------------------


def test_keys_are_shown_with_copy_buttons_and_the_full_webhook_url(csm, source):
    text = page(csm.get(url("change", source.pk)))
    webhook = f"http://testserver/hooks/segment/{source.webhook_token}/"
    assert f'<code id="write-key-{source.pk}">{source.write_key}</code>' in text
    assert f'<code id="webhook-url-{source.pk}">{webhook}</code>' in text
    for target in ("write-key", "webhook-url"):
        assert f'data-copy-target="{target}-{source.pk}"' in text
    assert "navigator.clipboard.writeText" in text
    assert source.webhook_secret not in text
    assert "Set (never shown again)" in text
    assert url("regenerate_keys", source.pk) in text


def test_the_webhook_url_uses_the_public_base_url(csm, source, settings):
    settings.PUBLIC_BASE_URL = "https://console.example.com/"
    text = page(csm.get(url("change", source.pk)))
    assert f"https://console.example.com/hooks/segment/{source.webhook_token}/" in text


def test_a_purchasely_source_shows_its_webhook_url(csm, workspace):
    source = Source.objects.create(workspace=workspace, name="App", kind="purchasely")
    text = page(csm.get(url("change", source.pk)))
    assert f"/hooks/purchasely/{source.webhook_token}/" in text
    assert "Purchasely" in text


# --- the write-only webhook secret ---------------------------------------------------


def post_change(client: Client, source: Source, **changes: str):
    data = form_data(page(client.get(url("change", source.pk))), "source_form")
    return client.post(url("change", source.pk), {**data, **changes})


def test_the_secret_field_is_write_only(csm, source):
    text = page(csm.get(url("change", source.pk)))
    assert re.search(r'<input type="password" name="new_webhook_secret"(?![^>]*value=)', text)
    assert post_change(csm, source).status_code == 302
    assert keys(source)[2]  # empty keeps it
    stamp = source.keys_rotated_at
    assert post_change(csm, source, new_webhook_secret="my-shared-secret").status_code == 302
    assert keys(source)[2] == "my-shared-secret"
    assert source.keys_rotated_at and source.keys_rotated_at != stamp
    assert "my-shared-secret" not in page(csm.get(url("change", source.pk)))


def test_the_secret_can_be_removed(csm, source):
    assert post_change(csm, source, remove_webhook_secret="on").status_code == 302
    assert keys(source)[2] == ""
    assert "Not set: webhook signatures are not checked" in page(csm.get(url("change", source.pk)))


def test_a_new_secret_and_its_removal_together_are_refused(csm, source):
    old = keys(source)
    text = page(post_change(csm, source, new_webhook_secret="x", remove_webhook_secret="on"))
    assert "not both" in text
    assert keys(source) == old


def test_a_generated_secret_is_shown_once_on_creation(csm, workspace):
    data = {"workspace": workspace.pk, "name": "New", "kind": "segment", "enabled": "on"}
    response = csm.post(url("add"), data)
    text = page(response)
    source = Source.objects.get(name="New")
    assert f'<code id="webhook-secret-{source.pk}">{source.webhook_secret}</code>' in text
    assert "no-store" in response["Cache-Control"]
    assert source.webhook_secret not in page(csm.get(url("change", source.pk)))


def test_a_typed_secret_is_not_shown_on_creation(csm, workspace):
    data = {"workspace": workspace.pk, "name": "New", "kind": "segment"}
    response = csm.post(url("add"), {**data, "new_webhook_secret": "typed-secret"})
    assert response.status_code == 302
    assert Source.objects.get(name="New").webhook_secret == "typed-secret"


# --- regenerating keys ---------------------------------------------------------------


def test_regenerating_asks_for_confirmation_first(csm, source):
    old = keys(source)
    text = page(csm.get(url("regenerate_keys", source.pk)))
    assert "Yes, regenerate the keys" in text
    assert 'method="post"' in text
    assert keys(source) == old


def test_the_new_secret_is_shown_once_and_never_again(csm, source):
    old = keys(source)
    response = csm.post(url("regenerate_keys", source.pk))
    text = page(response)
    write_key, token, secret = keys(source)
    assert all(a != b for a, b in zip(old, (write_key, token, secret), strict=True))
    assert f'<code id="webhook-secret-{source.pk}">{secret}</code>' in text
    assert f'data-copy-target="webhook-secret-{source.pk}"' in text
    assert write_key in text and f"/hooks/segment/{token}/" in text
    assert "no-store" in response["Cache-Control"]
    for later in [
        url("change", source.pk),
        url("changelist"),
        url("history", source.pk),
        url("regenerate_keys", source.pk),
        "/admin/integrations/audit-trail/",
    ]:
        assert secret not in page(csm.get(later)), later


def test_regeneration_is_logged(csm, source):
    csm.post(url("regenerate_keys", source.pk))
    source.refresh_from_db()
    assert source.keys_rotated_at is not None
    record = source.history.first()
    assert record.history_user.username == "carla"
    assert record.history_change_reason == "Keys regenerated"
    assert record.keys_rotated_at == source.keys_rotated_at
    entry = LogEntry.objects.get(object_id=str(source.pk))
    assert "Regenerated" in entry.get_change_message()


def test_the_list_action_confirms_then_shows_every_new_secret(csm, workspace, source):
    other = Source.objects.create(workspace=workspace, name="App", kind="purchasely")
    data = {"action": "regenerate_keys", "_selected_action": [source.pk, other.pk]}
    before = (keys(source), keys(other))
    text = page(csm.post(url("changelist"), data))
    assert "Yes, regenerate the keys" in text
    assert (keys(source), keys(other)) == before
    confirm = form_data(text, "regenerate-keys")
    assert confirm["post"] == "yes"
    text = page(csm.post(url("changelist"), {**data, "post": "yes"}))
    for item, (old_key, *_) in zip((source, other), before, strict=True):
        assert keys(item)[0] != old_key
        assert item.webhook_secret in text


def test_a_viewer_cannot_regenerate(viewer, source):
    old = keys(source)
    assert url("regenerate_keys", source.pk) not in page(viewer.get(url("change", source.pk)))
    assert viewer.get(url("regenerate_keys", source.pk)).status_code == 403
    assert viewer.post(url("regenerate_keys", source.pk)).status_code == 403
    data = {"action": "regenerate_keys", "_selected_action": [source.pk], "post": "yes"}
    viewer.post(url("changelist"), data)
    assert keys(source) == old
    assert "new_webhook_secret" not in page(viewer.get(url("change", source.pk)))


def test_another_workspaces_source_is_out_of_reach(csm, db):
    other = Workspace.objects.create(name="Other", slug="other")
    source = Source.objects.create(workspace=other, name="Theirs")
    old = keys(source)
    assert csm.get(url("regenerate_keys", source.pk)).status_code == 404
    assert csm.post(url("regenerate_keys", source.pk)).status_code == 404
    assert keys(source) == old
