"""The event grid's bulk switches (every event, or one group's) and "only what is on" view:
the page offers them, and saving what they set stores only the rows that differ from what
the mode gives (a stored rule switched back to that is removed)."""

import pytest

from integrations.models import EventRule, Integration, Source
from integrations.sources.purchasely import EVENTS as PURCHASELY_GROUPS
from tests.test_admin_integration_page import Grid, change_url, page, rules
from tests.test_fanout import make_integration

OFFERS = PURCHASELY_GROUPS["Offer"]
PURCHASELY_EVENTS = [name for names in PURCHASELY_GROUPS.values() for name in names]


@pytest.fixture
def hook(workspace) -> Integration:
    return make_integration(workspace)


@pytest.fixture
def purchasely(workspace) -> Source:
    return Source.objects.create(workspace=workspace, name="App", kind="purchasely")


def test_the_grid_offers_bulk_switches_per_group(csm, hook, purchasely):
    text = page(csm.get(change_url(hook)))
    assert 'data-bulk="on">all on</button>' in text and 'data-bulk="off">all off</button>' in text
    for group in [*(f"Purchasely: {g}" for g in PURCHASELY_GROUPS), "Other calls"]:
        assert f'data-bulk="off" data-group="{group}"' in text, group
    assert 'id="event-grid-only-on"' in text
    assert 'data-name="trial_started" data-group="Purchasely: Offer" data-on="1"' in text


def test_a_viewer_gets_the_view_but_no_switches(viewer, hook, purchasely):
    EventRule.objects.create(integration=hook, event="ACTIVATE", enabled=False)
    text = page(viewer.get(change_url(hook)))
    assert 'id="event-grid-only-on"' in text
    assert 'data-bulk="' not in text
    assert 'data-name="activate" data-group="Purchasely: Entitlement" data-on="0"' in text


def test_a_group_switched_off_stores_a_rule_per_event_of_the_group(csm, hook, purchasely):
    grid = Grid(csm, hook)
    for name in OFFERS:  # what the group's "off" button does
        grid.switch(name, False)
    assert grid.save().status_code == 302
    assert rules(hook) == {(name, False, "") for name in OFFERS}


def test_all_on_removes_the_rules_the_mode_makes_useless(csm, hook, purchasely):
    EventRule.objects.create(integration=hook, event="ACTIVATE", enabled=False)
    EventRule.objects.create(integration=hook, event="DEACTIVATE", enabled=False, send_as="gone")
    EventRule.objects.create(integration=hook, event="identify", enabled=False)
    grid = Grid(csm, hook)
    for name in [*PURCHASELY_EVENTS, "identify"]:  # "all on"
        grid.switch(name, True)
    assert grid.save().status_code == 302
    # Switched on is what "send every event" gives: only the renamed one stays a rule.
    assert rules(hook) == {("DEACTIVATE", True, "gone")}
    assert EventRule.history.filter(event="ACTIVATE", history_type="-").exists()


def test_all_on_in_only_enabled_mode_stores_the_track_events(csm, hook, purchasely):
    Integration.objects.filter(pk=hook.pk).update(event_mode="only_enabled")
    grid = Grid(csm, hook)
    for name in PURCHASELY_EVENTS:
        grid.switch(name, True)
    assert grid.save().status_code == 302
    assert rules(hook) == {(name, True, "") for name in PURCHASELY_EVENTS}
    # ... and "all off" then leaves no rule at all.
    grid = Grid(csm, hook)
    for name in [*PURCHASELY_EVENTS, "identify"]:
        grid.switch(name, False)
    assert grid.save().status_code == 302
    assert rules(hook) == {("identify", False, "")}


def test_an_invalid_row_is_not_taken_for_a_default(csm, hook):
    grid = Grid(csm, hook).add("x" * 300)
    text = page(grid.save())
    assert "Please correct the error" in text
    assert not hook.event_rules.exists()
