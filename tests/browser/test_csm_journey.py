"""A CSM's journey in a real browser: set up Customer.io for Purchasely events, test it,
audit and retry the delivery; a CSM of another workspace sees none of it. Then alerts and
the live debugger: an alert rule whose email arrives when a vendor refuses the
credentials, and an event sent after the debugger page opened showing up in it."""

import json

import pytest
import requests

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
from tests.traffic import deliver_due, send

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
    Source.objects.create(workspace=acme, name="Acme app", kind="purchasely")
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


@pytest.fixture
def acme_web(django_user_model):
    acme = Workspace.objects.create(name="Acme Apps", slug="acme")
    source = Source.objects.create(workspace=acme, name="Acme web")
    user = django_user_model.objects.create_user("csm-acme", password=PASSWORD, is_staff=True)
    WorkspaceMembership.objects.create(user=user, workspace=acme, role="csm")
    return acme, source


def test_csm_gets_an_alert_email_and_watches_events_arrive(
    new_page, acme_web, vendor, live_server, mailoutbox, settings
):
    acme, source = acme_web
    settings.PUBLIC_BASE_URL = live_server.url
    vendor.set_default("/hook", Reply(401, body='{"error": "invalid token"}'))
    integration = Integration(workspace=acme, name="Ops webhook", kind="webhook")
    integration.set_settings({"url": vendor.url("/hook")})
    integration.save()
    page = new_page()
    log_in(page, "csm-acme", PASSWORD)

    # An alert rule: email the CSM when a vendor refuses the credentials.
    page.goto("/admin/integrations/alertrule/add/")
    page.fill("#id_name", "Vendor refuses credentials")
    page.select_option("#id_workspace", label="Acme Apps")
    page.select_option("#id_channel", "email")
    page.fill("#id_target", "csm@acme.example")
    page.select_option("#id_condition", "auth_error")
    screenshot(page, "10-alert-rule")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    # An outage: the vendor answers 401 to what the worker sends.
    send(source, type="track", userId="u-1", event="Signed Up")
    deliver_due(integration)
    (email,) = mailoutbox
    assert email.to == ["csm@acme.example"]
    assert email.subject == (
        "[Acme Apps] Alert: Vendor refuses credentials "
        "(Ops webhook: Vendor refuses the credentials (HTTP 401, 403, 410))"
    )
    assert "answered HTTP 401" in email.body and "invalid token" in email.body
    link = next(line for line in email.body.splitlines() if line.startswith("Delivery log: "))
    page.goto(link.removeprefix("Delivery log: "))
    page.wait_for_selector("#result_list")
    assert "Ops webhook" in page.content()
    screenshot(page, "11-alert-delivery-log")
    page.goto("/admin/integrations/alertincident/")
    assert "answered HTTP 401" in page.content()
    screenshot(page, "12-alert-incidents")

    # The live debugger: an event sent after the page opened appears without a reload.
    page.goto(f"/admin/integrations/source/{source.pk}/change/")
    page.get_by_role("link", name="Live debugger").click()
    page.wait_for_selector("#debugger-status.live")
    page.evaluate("window.sameDocument = true")
    sent = requests.post(
        f"{live_server.url}/v1/track",
        auth=(source.write_key, ""),
        json={"userId": "u-42", "event": "Browser Event", "properties": {"plan": "pro"}},
        timeout=10,
    )
    assert sent.status_code == 200
    row = page.locator("tr.event-row", has_text="Browser Event")
    row.wait_for()
    assert page.evaluate("window.sameDocument") is True
    assert "u-42" in row.inner_text()
    row.click()
    assert '"plan": "pro"' in page.locator("tr.payload-row pre").inner_text()
    screenshot(page, "13-live-debugger")
    # Events come from outside: markup in one is shown as text, never run.
    requests.post(
        f"{live_server.url}/v1/track",
        auth=(source.write_key, ""),
        json={"userId": "u-43", "event": "<img src=x onerror=window.pwned=1>"},
        timeout=10,
    )
    page.locator("tr.event-row", has_text="<img src=x onerror").wait_for()
    assert page.evaluate("window.pwned") is None
