"""The event grid's bulk switches and "only what is on" view, in a real browser: what the
page's script sets is what saving stores."""

import pytest

from integrations.models import EventRule, Integration, Source, Workspace, WorkspaceMembership
from integrations.sources.purchasely import EVENTS as PURCHASELY_GROUPS
from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
OFFERS = PURCHASELY_GROUPS["Offer"]


@pytest.fixture
def hook(django_user_model) -> Integration:
    workspace = Workspace.objects.create(name="Acme Apps", slug="acme")
    Source.objects.create(workspace=workspace, name="App", kind="purchasely")
    user = django_user_model.objects.create_user("csm", password=PASSWORD, is_staff=True)
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role="csm")
    integration = Integration(workspace=workspace, name="Hook", kind="webhook")
    integration.set_settings({"url": "https://hooks.example.com/in"})
    integration.save()
    return integration


def rules(integration: Integration) -> set[tuple[str, bool]]:
    return set(EventRule.objects.filter(integration=integration).values_list("event", "enabled"))


def test_group_switch_only_on_view_and_all_on(new_page, hook):
    page = new_page()
    log_in(page, "csm", PASSWORD)
    page.goto(f"/admin/integrations/integration/{hook.pk}/change/")
    grid = page.locator("#event-rules")
    grid.get_by_role("button", name="Switch off every event of Purchasely: Offer").click()
    page.check("#event-grid-only-on")
    offer_header = grid.locator('tr.grid-group[data-group="Purchasely: Offer"]')
    assert offer_header.is_hidden()
    assert grid.locator('tr.grid-row[data-name="trial_started"]').is_hidden()
    assert grid.locator('tr.grid-row[data-name="activate"]').is_visible()
    screenshot(page, "grid-only-what-is-on")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert rules(hook) == {(name, False) for name in OFFERS}

    grid.get_by_role("button", name="all on").click()
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert rules(hook) == set()  # every event on: what the mode gives, so no rule
