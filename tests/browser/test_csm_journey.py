"""A CSM's journey in a real browser: set up Customer.io for Purchasely events, test it,
audit and retry the delivery; a CSM of another workspace sees none of it."""

import json

import pytest

from integrations.delivery import engine
from integrations.delivery.tasks import QUEUE
from integrations.models import (
    Delivery,
    EventRule,
    Integration,
    Source,
    Workspace,
    WorkspaceMembership,
)
from tests.browser.conftest import log_in, screenshot
from tests.e2e.fake_vendor import FakeVendor, Reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
ENTITY = "/api/v2/entity"


@pytest.fixture
def vendor():
    with FakeVendor() as fake:
        yield fake


@pytest.fixture
def two_workspaces(django_user_model):
    acme = Workspace.objects.create(name="Acme Apps", slug="acme")
    Source.objects.create(workspace=acme, name="Acme app", kind=Source.Kind.PURCHASELY)
    globex = Workspace.objects.create(name="Globex", slug="globex")
    Source.objects.create(workspace=globex, name="Globex site")
    for username, workspace in (("csm-acme", acme), ("csm-globex", globex)):
        user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
        WorkspaceMembership.objects.create(user=user, workspace=workspace, role="csm")
    return acme, globex


def grid_row(page, event: str):
    return page.locator(f'tr.grid-row[data-name="{event.lower()}"]')


def test_csm_configures_tests_audits_and_retries(new_page, two_workspaces, vendor):
    acme, _ = two_workspaces
    vendor.script(ENTITY, Reply(500, body='{"errors":[{"message":"try later"}]}'))
    page = new_page()
    log_in(page, "csm-acme", PASSWORD)
    screenshot(page, "01-admin-index")

    # Create a Customer.io integration: pick the vendor, then fill its settings.
    page.goto("/admin/integrations/integration/add/")
    screenshot(page, "02-choose-destination")
    page.get_by_role("link", name="Customer.io").click()
    page.fill("#id_name", "Customer.io (app)")
    page.select_option("#id_workspace", label="Acme Apps")
    page.fill("#id_setting__site_id", "site-123")
    page.fill("#id_setting__api_key", "cio-secret-key")
    page.fill("#id_api_base_url", vendor.url("").rstrip("/"))
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    integration = Integration.objects.get(name="Customer.io (app)")
    assert integration.secret_settings["api_key"] == "cio-secret-key"
    assert "cio-secret-key" not in page.content()

    # Purchasely's event list: switch one event off and rename another.
    grid_row(page, "RENEWAL_DISABLED").locator("input[type=checkbox][name$=enabled]").uncheck()
    grid_row(page, "TRIAL_CONVERTED").locator("input[name$=send_as]").fill("Trial Converted")
    screenshot(page, "03-integration-page")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    rules = {
        r.event: (r.enabled, r.send_as) for r in EventRule.objects.filter(integration=integration)
    }
    assert rules == {"RENEWAL_DISABLED": (False, ""), "TRIAL_CONVERTED": (True, "Trial Converted")}

    # The event tester: send a TRIAL_CONVERTED sample for real; the vendor answers 500.
    page.select_option("select[name=sample]", "TRIAL_CONVERTED")
    page.get_by_role("button", name="Send test event").click()
    page.wait_for_selector("text=in the log")
    screenshot(page, "04-event-tester")
    (sent,) = vendor.requests_to(ENTITY)
    assert sent.json()["name"] == "Trial Converted"
    delivery = Delivery.objects.get(integration=integration)
    assert delivery.origin == Delivery.Origin.TEST
    assert delivery.status == Delivery.Status.FAILED

    # Find it in the delivery log, open it and retry it.
    page.goto("/admin/integrations/delivery/?q=user-123")
    page.wait_for_selector("#result_list")
    assert "Trial Converted" in page.content() or "TRIAL_CONVERTED" in page.content()
    screenshot(page, "05-delivery-log")
    page.locator("#result_list tbody th a").first.click()
    page.wait_for_selector("text=Request sent")
    screenshot(page, "06-delivery-detail")
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_selector("text=queued")
    # The worker's part of the retry (no worker runs in this test): one manual attempt.
    engine.deliver_deliveries(integration.pk, [delivery.pk], "manual", QUEUE)
    page.reload()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DELIVERED
    assert [a.trigger for a in delivery.attempt_log()] == ["test", "manual"]
    screenshot(page, "07-delivery-retried")
    assert "cio-secret-key" not in page.content()

    page.goto(f"/admin/integrations/dashboard/?workspace={acme.slug}")
    screenshot(page, "08-dashboard")

    # A CSM of another workspace sees none of it.
    other = new_page()
    log_in(other, "csm-globex", PASSWORD)
    for path in (
        f"/admin/integrations/integration/{integration.pk}/change/",
        f"/admin/integrations/delivery/{delivery.pk}/change/",
    ):
        other.goto(path)
        assert "Customer.io (app)" not in other.content()
        assert "Trial Converted" not in other.content()
    for path in (
        "/admin/integrations/integration/",
        "/admin/integrations/delivery/",
        "/admin/integrations/event/",
        f"/admin/integrations/dashboard/?workspace={acme.slug}",
    ):
        other.goto(path)
        content = other.content()
        assert "Customer.io (app)" not in content, path
        assert "Acme Apps" not in content, path
    screenshot(other, "09-other-workspace")
    assert json.dumps(vendor.requests_to(ENTITY)[-1].json()).count("Trial Converted") == 1
