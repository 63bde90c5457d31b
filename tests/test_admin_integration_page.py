"""The integration's admin page: the event rules grid of the workspace's catalog, and the
event tester."""

import json
import re

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.admin import event_grid
from integrations.models import (
    Delivery,
    Event,
    EventRule,
    Integration,
    SeenEvent,
    Source,
    Workspace,
)
from integrations.sources.chargebee_retention import ChargebeeRetention
from integrations.sources.purchasely import EVENTS as PURCHASELY_GROUPS
from tests.browser_form import form_data
from tests.test_fanout import make_integration

URL = "https://hooks.example.com/in"
PURCHASELY_EVENTS = [name for names in PURCHASELY_GROUPS.values() for name in names]


@pytest.fixture
def hook(workspace) -> Integration:
    integration = make_integration(workspace)
    integration.set_settings({"url": URL, "headers": {"Authorization": "Bearer tok-12345"}})
    integration.save()
    return integration


@pytest.fixture
def purchasely(workspace) -> Source:
    return Source.objects.create(workspace=workspace, name="App", kind="purchasely")


def change_url(integration: Integration) -> str:
    return reverse("admin:integrations_integration_change", args=[integration.pk])


def url_of_tester(integration: Integration) -> str:
    return reverse("admin:integrations_integration_test", args=[integration.pk])


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def grid_names(text: str) -> list[str]:
    """The event names of the grid's rows, in order."""
    grid = text[
        text.index('id="event-rules"') : text.index("</fieldset>", text.index("event-rules"))
    ]
    return re.findall(r'<span class="event-name">([^<]+)</span>', grid)


def rules(integration: Integration) -> set[tuple[str, bool, str]]:
    return set(integration.event_rules.values_list("event", "enabled", "send_as"))


class Grid:
    """The integration page's form as a browser posts it, edited row by row."""

    def __init__(self, client: Client, integration: Integration) -> None:
        self.client, self.url = client, change_url(integration)
        self.data = form_data(page(client.get(self.url)), "integration_form")

    def prefix(self, name: str) -> str:
        for key, value in self.data.items():
            if re.fullmatch(r"event_rules-\d+-event", key) and value == name:
                return key.removesuffix("-event")
        raise KeyError(name)

    def switch(self, name: str, on: bool) -> "Grid":
        key = f"{self.prefix(name)}-enabled"
        if on:
            self.data[key] = "on"
        else:
            self.data.pop(key, None)
        return self

    def rename(self, name: str, send_as: str) -> "Grid":
        self.data[f"{self.prefix(name)}-send_as"] = send_as
        return self

    def add(self, name: str, send_as: str = "", on: bool = True) -> "Grid":
        index = next(
            key.removesuffix("-event")
            for key, value in self.data.items()
            if re.fullmatch(r"event_rules-\d+-event", key) and value == ""
        )
        self.data[f"{index}-event"] = name
        self.data[f"{index}-send_as"] = send_as
        if not on:
            self.data.pop(f"{index}-enabled", None)
        return self

    def save(self):
        return self.client.post(self.url, self.data)


# --- the grid lists the catalog ------------------------------------------------------


def test_grid_lists_purchaselys_full_event_list(csm, hook, purchasely):
    names = grid_names(page(csm.get(change_url(hook))))
    assert [n for n in names if n in PURCHASELY_EVENTS] == PURCHASELY_EVENTS
    assert not set(ChargebeeRetention.known_event_names()) & set(names)  # no Segment source
    text = page(csm.get(change_url(hook)))
    for group in PURCHASELY_GROUPS:
        assert f"Purchasely: {group}" in text


def test_grid_lists_chargebee_events_and_names_seen_with_counts(csm, hook, source):
    seen_at = timezone.now().replace(year=2025, month=6, day=1, hour=10, minute=30)
    SeenEvent.objects.create(
        workspace=hook.workspace, name="Signed Up", count=42, last_seen_at=seen_at
    )
    text = page(csm.get(change_url(hook)))
    names = grid_names(text)
    assert set(ChargebeeRetention.known_event_names()) <= set(names)
    assert "Signed Up" in names and "Seen in traffic" in text
    row = text[text.index('data-name="signed up"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">42</td>' in row
    assert "2025-06-01 10:30" in row
    assert "The user accepted an offer" in text  # Chargebee's description
    assert "identify" in names  # the call types the vendor takes, to switch off


def test_grid_lists_rules_outside_the_catalog_and_custom_rows(csm, hook):
    EventRule.objects.create(integration=hook, event="Legacy Event", enabled=False)
    text = page(csm.get(change_url(hook)))
    assert "Legacy Event" in grid_names(text)
    assert text.count('placeholder="Custom event name"') == event_grid.BLANK_ROWS


def test_grid_shows_the_mode_and_the_stored_rule_values(csm, hook, purchasely):
    EventRule.objects.create(integration=hook, event="ACTIVATE", send_as="activated")
    Integration.objects.filter(pk=hook.pk).update(event_mode="only_enabled")
    assert "send only the events switched on" in page(csm.get(change_url(hook)))
    grid = Grid(csm, hook)
    data = grid.data
    activate = grid.prefix("ACTIVATE")
    assert data[f"{activate}-send_as"] == "activated"
    assert data[f"{activate}-enabled"] == "on"
    assert f"{grid.prefix('DEACTIVATE')}-enabled" not in data  # off without a rule
    assert f"{grid.prefix('identify')}-enabled" in data  # calls are sent in both modes


def test_rarely_seen_names_beyond_the_limit_are_left_out(csm, hook, source, monkeypatch):
    monkeypatch.setattr(event_grid, "SEEN_LIMIT", 2)
    for count, name in enumerate(["Rare", "Common", "Frequent"]):
        SeenEvent.objects.create(workspace=hook.workspace, name=name, count=count)
    text = page(csm.get(change_url(hook)))
    names = grid_names(text)
    assert "Frequent" in names and "Common" in names and "Rare" not in names
    assert "1 rarer name seen in traffic is not listed" in text


def test_the_grid_posts_few_fields(csm, hook, source, purchasely):
    """Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) fields."""
    SeenEvent.objects.bulk_create(
        SeenEvent(workspace=hook.workspace, name=f"Event {i}", count=i) for i in range(500)
    )
    grid = Grid(csm, hook)
    assert len(grid.data) < 800
    assert grid.save().status_code == 302


# --- saving the grid -----------------------------------------------------------------


def test_saving_untouched_rows_stores_nothing(csm, hook, source, purchasely):
    assert Grid(csm, hook).save().status_code == 302
    assert not hook.event_rules.exists()


def test_toggles_and_renames_make_rules(csm, hook, source, purchasely):
    grid = Grid(csm, hook).switch("ACTIVATE", False).rename("TRIAL_CONVERTED", "Trial Converted")
    grid.switch("identify", False).add("My Custom Event", send_as="custom")
    grid.add("Switched Off Custom", on=False).add("Default Custom")  # the last is the default
    response = grid.save()
    assert response.status_code == 302, response.content.decode()
    assert rules(hook) == {
        ("ACTIVATE", False, ""),
        ("TRIAL_CONVERTED", True, "Trial Converted"),
        ("identify", False, ""),
        ("My Custom Event", True, "custom"),
        ("Switched Off Custom", False, ""),
    }


def test_in_only_enabled_mode_a_switched_on_event_needs_a_rule(csm, hook, purchasely):
    Integration.objects.filter(pk=hook.pk).update(event_mode="only_enabled")
    grid = Grid(csm, hook).switch("SUBSCRIPTION_STARTED", True).switch("identify", False)
    assert grid.save().status_code == 302
    assert rules(hook) == {("SUBSCRIPTION_STARTED", True, ""), ("identify", False, "")}


def test_changing_the_mode_leaves_untouched_rows_unstored(csm, hook, purchasely):
    """The page's script redraws the rows without a rule in the new mode and says so."""
    grid = Grid(csm, hook)
    grid.data["event_mode"] = grid.data["event_rules-shown_mode"] = "only_enabled"
    for name in PURCHASELY_EVENTS:  # what the script does to the untouched rows
        grid.switch(name, False)
    grid.switch("ACTIVATE", True)
    assert grid.save().status_code == 302
    hook.refresh_from_db()
    assert hook.event_mode == "only_enabled"
    assert rules(hook) == {("ACTIVATE", True, "")}


def test_changing_the_mode_without_the_script_stores_only_what_was_switched(csm, hook, purchasely):
    grid = Grid(csm, hook).switch("DEACTIVATE", False)
    grid.data["event_mode"] = "only_enabled"  # rows still drawn (and posted) as "all"
    assert grid.save().status_code == 302
    assert not hook.event_rules.exists()  # DEACTIVATE is off in the new mode anyway


def test_stored_rules_are_updated_and_reset(csm, hook, purchasely):
    EventRule.objects.create(integration=hook, event="ACTIVATE", enabled=False)
    EventRule.objects.create(integration=hook, event="DEACTIVATE", send_as="old")
    grid = Grid(csm, hook).switch("ACTIVATE", True).rename("ACTIVATE", "activated")
    grid.data[f"{grid.prefix('DEACTIVATE')}-DELETE"] = "on"
    assert grid.save().status_code == 302
    assert rules(hook) == {("ACTIVATE", True, "activated")}
    assert EventRule.history.filter(event="DEACTIVATE", history_type="-").exists()


def test_a_custom_name_repeating_a_rule_is_refused(csm, hook):
    EventRule.objects.create(integration=hook, event="Churned", enabled=False)
    grid = Grid(csm, hook).add("Churned", send_as="x")
    text = page(grid.save())
    assert "Please correct the error" in text
    assert rules(hook) == {("Churned", False, "")}


def test_a_grid_drawn_before_the_catalog_grew_still_saves_by_name(csm, hook, source):
    grid = Grid(csm, hook).switch("cancel", False)
    SeenEvent.objects.create(workspace=hook.workspace, name="Aaa New", count=10**6)
    assert grid.save().status_code == 302
    assert rules(hook) == {("cancel", False, "")}


def test_viewer_sees_the_grid_read_only(viewer, hook, purchasely):
    EventRule.objects.create(integration=hook, event="ACTIVATE", enabled=False, send_as="x")
    text = page(viewer.get(change_url(hook)))
    assert set(PURCHASELY_EVENTS) <= set(grid_names(text))
    assert 'name="event_rules-0-enabled"' not in text
    assert "Off" in text
    grid = form_data(text, "integration_form")
    assert viewer.post(change_url(hook), grid).status_code == 403


# --- the event tester ----------------------------------------------------------------


def test_the_change_page_has_the_tester(csm, viewer, hook):
    text = page(csm.get(change_url(hook)))
    assert f'action="{url_of_tester(hook)}"' in text
    assert "Send test event" in text and "TRIAL_CONVERTED" in text
    text = page(viewer.get(change_url(hook)))
    assert f'action="{url_of_tester(hook)}"' in text
    assert "Send test event" not in text


def test_preview_shows_redacted_requests_and_sends_nothing(csm, hook):
    with responses.RequestsMock() as mock:  # any request would fail the test
        text = page(
            csm.post(url_of_tester(hook), {"sample": "TRIAL_CONVERTED", "action": "preview"})
        )
        assert len(mock.calls) == 0
    assert "Preview: 1 request, nothing sent" in text
    assert f"POST {URL}" in text
    assert "Authorization: [REDACTED]" in text
    assert "tok-12345" not in text
    assert hook.secret_settings["secret"] not in text
    assert "&quot;TRIAL_CONVERTED&quot;" in text
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_preview_of_a_pasted_event(csm, hook):
    event = {"type": "track", "userId": "u-9", "event": "Pasted Thing"}
    text = page(csm.post(url_of_tester(hook), {"event": json.dumps(event), "action": "preview"}))
    assert "Pasted Thing" in text and "u-9" in text


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "Pick a sample or paste an event."),
        ({"event": "{nope"}, "This is not JSON"),
        ({"event": "[1]"}, "An event is a JSON object"),
        ({"event": "[" * 100_000 + "]" * 100_000}, "nests objects and arrays too deep"),
        ({"event": '{"type": "track", "userId": "u", "n": 1e999}'}, "not finite"),
        ({"event": '{"type": "track"}'}, "userId or anonymousId"),
        ({"sample": "not-a-sample"}, "Select a valid choice"),
    ],
)
def test_tester_errors(csm, hook, data, error):
    text = page(csm.post(url_of_tester(hook), {**data, "action": "preview"}))
    assert error in text
    assert "Preview:" not in text


def test_preview_of_a_switched_off_event_says_why(csm, hook):
    EventRule.objects.create(integration=hook, event="Noise", enabled=False)
    event = json.dumps({"type": "track", "userId": "u", "event": "Noise"})
    text = page(csm.post(url_of_tester(hook), {"event": event, "action": "send"}))
    assert "event rule switches it off" in text and "Nothing sent" in text
    assert not Delivery.objects.exists()


@responses.activate
def test_send_makes_a_test_delivery_and_shows_the_answer(csm, hook):
    responses.post(URL, status=201, json={"received": True})
    text = page(csm.post(url_of_tester(hook), {"sample": "identify", "action": "send"}))
    delivery = Delivery.objects.get()
    assert delivery.origin == Delivery.Origin.TEST and delivery.event.is_test
    assert delivery.status == Delivery.Status.DELIVERED
    assert "Test event sent" in text and "Delivered" in text and "HTTP 201" in text
    assert reverse("admin:integrations_delivery_change", args=[delivery.pk]) in text
    assert "received" in text  # the vendor's response
    assert "tok-12345" not in text


@responses.activate
def test_a_failed_test_send_shows_the_reason(csm, hook):
    responses.post(URL, status=422, body="bad payload")
    text = page(csm.post(url_of_tester(hook), {"sample": "track", "action": "send"}))
    assert "Failed" in text and "HTTP 422" in text and "bad payload" in text
    assert Delivery.objects.get().next_attempt_at is None


def test_viewer_previews_but_cannot_send(viewer, hook):
    with responses.RequestsMock():
        text = page(viewer.post(url_of_tester(hook), {"sample": "track", "action": "preview"}))
        assert "Preview: 1 request" in text
        assert (
            viewer.post(url_of_tester(hook), {"sample": "track", "action": "send"}).status_code
            == 403
        )
    assert not Delivery.objects.exists()


def test_the_tester_of_another_workspace_is_out_of_reach(csm, db):
    other = Workspace.objects.create(name="Other", slug="other")
    integration = make_integration(other)
    assert csm.get(url_of_tester(integration)).status_code == 404
    response = csm.post(url_of_tester(integration), {"sample": "track", "action": "send"})
    assert response.status_code == 404
    assert not Delivery.objects.exists()
