"""The delivery log on a laptop's screen (1366x768 and 1440x900) with long event names,
user ids and errors: no column is cut off. Then an outage (a ChurnZero integration whose
host does not resolve) seen on the dashboard and the integration list."""

import pytest

from integrations.models import Source, Workspace, WorkspaceMembership
from tests.browser.conftest import log_in, screenshot
from tests.e2e.fake_vendor import FakeVendor, Reply
from tests.outage import churnzero_traffic, resolve_nothing_but_loopback, unresolvable_churnzero
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
LONG_EVENT = "Subscription Renewed After The Extended Enterprise Trial Period Was Converted"
LONG_USER = "customer-0f9c2a1e-5b7d-4c3e-9a8f-long-external-identifier@tenant.example.com"

# Every header and cell of the list, with where it ends and where the viewport does.
OUTSIDE = """() => {
  const width = document.documentElement.clientWidth;
  const cells = [...document.querySelectorAll('#result_list th, #result_list td')];
  return {
    cells: cells.length,
    width,
    outside: cells
      .map((cell) => [cell.className, cell.getBoundingClientRect()])
      .filter(([, box]) => box.left < 0 || box.right > width + 0.5)
      .map(([name, box]) => `${name}: ${Math.round(box.left)}..${Math.round(box.right)}`),
    scrolls: document.documentElement.scrollWidth > width,
  };
}"""


@pytest.fixture
def csm_of_two(django_user_model):
    """A CSM of two workspaces (so that the workspace column is shown too)."""
    acme = Workspace.objects.create(name="Acme Apps International", slug="acme")
    globex = Workspace.objects.create(name="Globex", slug="globex")
    user = django_user_model.objects.create_user("csm", password=PASSWORD, is_staff=True)
    for workspace in (acme, globex):
        WorkspaceMembership.objects.create(user=user, workspace=workspace, role="csm")
    return acme, Source.objects.create(workspace=acme, name="Acme web")


@pytest.fixture
def laptop(browser, live_server):
    contexts = []

    def make(width: int, height: int):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def test_the_delivery_log_fits_a_laptop(laptop, csm_of_two):
    acme, source = csm_of_two
    with FakeVendor() as vendor:
        vendor.set_default("/hook", Reply(422, body="refused: " + "a long explanation " * 30))
        hook = make_integration(acme, name="Customer success webhook (production)")
        hook.set_settings({"url": vendor.url("/hook")})
        hook.save()
        for number in range(5):
            send(
                source,
                type="track",
                userId=f"{LONG_USER}-{number}",
                event=LONG_EVENT,
                messageId=f"laptop-{number}-" + "x" * 60,
            )
        deliver_due(hook)
    for width, height in ((1366, 768), (1440, 900)):
        page = laptop(width, height)
        log_in(page, "csm", PASSWORD)
        for path, name in (
            ("/admin/integrations/delivery/", "delivery-log"),
            ("/admin/integrations/event/", "event-log"),
        ):
            page.goto(path)
            page.wait_for_selector("#result_list")
            measured = page.evaluate(OUTSIDE)
            assert measured["cells"] > 10, measured
            assert measured["outside"] == [], (width, path, measured)
            assert not measured["scrolls"], (width, path, measured)
            screenshot(page, f"20-{name}-{width}")
        if width == 1366:
            error = page.goto("/admin/integrations/delivery/")
            assert error is not None
            cell = page.locator("td.field-error .clip").first
            assert cell.get_attribute("title").startswith("HTTP 422: refused: a long explanation")
            for header in ("Status", "Attempts", "Code", "Error"):
                box = page.get_by_role("columnheader", name=header).bounding_box()
                assert box is not None and box["x"] + box["width"] <= width, header


def test_an_outage_shows_on_the_dashboard(new_page, csm_of_two, monkeypatch):
    acme, source = csm_of_two
    resolve_nothing_but_loopback(monkeypatch)
    churnzero = unresolvable_churnzero(acme)
    churnzero_traffic(source, 4)
    deliver_due(churnzero)
    page = new_page()
    log_in(page, "csm", PASSWORD)
    page.goto(f"/admin/integrations/dashboard/?workspace={acme.slug}")
    banner = page.locator("#outage-banner")
    assert banner.is_visible()
    assert "ChurnZero: 0 pending, 4 retrying" in banner.inner_text()
    assert "Name or service not known" in banner.inner_text()
    assert page.locator("#waiting-now").inner_text() == "4"
    health_row = page.locator("#health-table tbody tr", has_text="ChurnZero")
    assert "Outage" in health_row.inner_text()
    screenshot(page, "21-dashboard-outage")
    page.goto("/admin/integrations/integration/")
    row = page.locator("#result_list tbody tr", has_text="ChurnZero")
    state = row.locator("td.field-health_now .health-state")
    assert state.inner_text() == "Outage"
    assert "Name or service not known" in state.get_attribute("title")
    assert row.locator("td.field-endpoint_ok img").get_attribute("alt") == "False"
    screenshot(page, "22-integration-list-outage")
