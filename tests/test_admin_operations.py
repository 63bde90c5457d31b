"""Operator actions in the admin and the API: the integration's state in words, pausing
with a reason (banner, audit trail), and retry/recover/replay showing what they will send
before they send it, each recorded in the audit trail."""

import datetime as dt
import re

import pytest
import responses
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations import audit
from integrations.models import Delivery, Integration, WorkspaceMembership
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"
CHANGELIST = reverse("admin:integrations_integration_changelist")


@pytest.fixture
def hook(workspace) -> Integration:
    return make_integration(workspace)


@pytest.fixture
def api(member_client):
    return member_client(WorkspaceMembership.Role.CSM, username="api-csm")


def url(integration: Integration, view: str) -> str:
    return reverse(f"admin:integrations_integration_{view}", args=[integration.pk])


def cell(text: str, column: str, integration: Integration) -> str:
    """The changelist cell of ``column`` in the row of ``integration``."""
    row = text[text.index(f'value="{integration.pk}"') :]
    row = row[: row.index("</tr>")]
    return re.search(rf'<td class="field-{column}">(.*?)</td>', row, re.S).group(1)


def operations_in_audit(workspace) -> list[audit.Change]:
    return [c for c in audit.describe(audit.changes([workspace.pk])) if c.action == ""]


def failed_deliveries(source, hook, count: int) -> list[Delivery]:
    with responses.RequestsMock() as mock:
        mock.post(URL, status=422, body="refused")
        for n in range(count):
            send(source, type="track", userId="u", event="E", messageId=f"f{n}")
        deliver_due(hook)
    failed = list(Delivery.objects.filter(status=Delivery.Status.FAILED))
    assert len(failed) == count
    return failed


def window() -> dict[str, str]:
    now = timezone.now()
    return {
        "since": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "until": (now + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
    }


# --- the state column and the banner --------------------------------------------------


def test_the_changelist_says_active_or_paused_in_words(csm, workspace, hook):
    paused = make_integration(workspace, name="Held")
    paused.change_state("Paused", paused=True)
    off = make_integration(workspace, name="Off", enabled=False)
    text = csm.get(CHANGELIST).content.decode()
    active_cell = cell(text, "delivery_state", hook)
    assert "Active" in active_cell and "icon-yes" in active_cell
    assert "icon-no" not in active_cell  # no red cross for a healthy integration
    paused_cell = cell(text, "delivery_state", paused)
    assert "Paused" in paused_cell and "icon-alert" in paused_cell
    assert "Off (disabled)" in cell(text, "delivery_state", off)


def test_pausing_asks_why_and_the_page_shows_a_banner(csm, hook):
    form = csm.get(url(hook, "pause")).content.decode()
    assert 'name="reason"' in form
    response = csm.post(url(hook, "pause"), {"reason": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not Integration.objects.get(pk=hook.pk).paused
    response = csm.post(url(hook, "pause"), {"reason": "Vendor maintenance until Friday"})
    assert response.status_code == 302
    page = csm.get(url(hook, "change")).content.decode()
    banner = page[page.index('id="paused-banner"') :]
    banner = banner[: banner.index("</ul>")]
    assert "carla" in banner and "Vendor maintenance until Friday" in banner
    assert timezone.now().strftime("%Y-%m-%d") in banner
    assert f'action="{url(hook, "resume")}"' in page
    record = hook.history.first()
    assert record.history_change_reason == "Paused: Vendor maintenance until Friday"
    assert record.history_user.username == "carla"


def test_the_banner_is_of_the_current_pause(csm, hook, django_user_model):
    operations_url = url(hook, "pause")
    csm.post(operations_url, {"reason": "first time"})
    csm.post(url(hook, "resume"))
    csm.post(operations_url, {"reason": "second time"})
    hook.refresh_from_db()
    hook.name = "Edited while paused"
    hook.save()
    pause = audit.current_pause(Integration.objects.get(pk=hook.pk))
    assert (pause.user, pause.reason) == ("carla", "second time")
    assert "second time" in csm.get(url(hook, "change")).content.decode()


def test_an_active_integration_has_no_banner(csm, hook):
    page = csm.get(url(hook, "change")).content.decode()
    assert 'id="paused-banner"' not in page
    assert f'href="{url(hook, "pause")}"' in page


def test_the_pause_action_asks_for_one_reason(csm, workspace, hook):
    other = make_integration(workspace, name="Second")
    action = {"action": "pause_selected", "_selected_action": [hook.pk, other.pk]}
    response = csm.post(CHANGELIST, action)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'name="reason"' in text and "Second" in text
    assert not Integration.objects.filter(paused=True).exists()
    response = csm.post(CHANGELIST, {**action, "reason": "Quarterly clean-up"})
    assert response.status_code == 302
    for integration in (hook, other):
        assert Integration.objects.get(pk=integration.pk).paused
        assert integration.history.first().history_change_reason == "Paused: Quarterly clean-up"


def test_the_api_takes_a_reason_for_a_pause(api, hook):
    base = f"/api/v1/workspaces/{hook.workspace.slug}/integrations/{hook.pk}"
    response = api.post(f"{base}/pause/", {"reason": "x" * 200}, format="json")
    assert response.status_code == 400
    assert not Integration.objects.get(pk=hook.pk).paused
    response = api.post(f"{base}/pause/", {"reason": "Broken mapping"}, format="json")
    assert response.status_code == 200 and response.json()["paused"] is True
    record = hook.history.first()
    assert (record.history_change_reason, record.history_user.username) == (
        "Paused: Broken mapping",
        "api-csm",
    )
    pause = audit.current_pause(Integration.objects.get(pk=hook.pk))
    assert (pause.user, pause.reason) == ("api-csm", "Broken mapping")


# --- retry, recover and replay: count, confirm, audit ---------------------------------


def test_recover_shows_the_count_and_waits_for_a_confirmation(csm, source, hook, workspace):
    failed_deliveries(source, hook, 2)
    DBTaskResult.objects.all().delete()
    response = csm.post(url(hook, "recover"), window())
    text = response.content.decode()
    assert response.status_code == 200
    assert "2 failed deliveries created in this range will get one manual attempt" in text
    assert 'name="confirm" value="yes"' in text
    assert not DBTaskResult.objects.exists()
    response = csm.post(url(hook, "recover"), {**window(), "confirm": "yes"}, follow=True)
    assert "2 failed deliveries queued" in response.content.decode()
    assert DBTaskResult.objects.count() == 1
    (entry,) = operations_in_audit(workspace)
    assert entry.user == "carla"
    assert entry.reason.startswith("Retried 2 failed deliveries created ")
    assert entry.reason.endswith(" UTC")


def test_recover_of_an_empty_range_offers_no_confirmation(csm, hook):
    response = csm.post(url(hook, "recover"), {**window(), "confirm": "yes"})
    text = response.content.decode()
    assert "nothing to retry" in text and 'value="yes"' not in text
    assert not DBTaskResult.objects.exists()
    assert not operations_in_audit(hook.workspace)


def test_recover_of_a_paused_integration_is_refused_before_counting(csm, source, hook):
    failed_deliveries(source, hook, 1)
    hook.change_state("Paused", paused=True)
    DBTaskResult.objects.all().delete()
    text = csm.post(url(hook, "recover"), {**window(), "confirm": "yes"}).content.decode()
    assert "is paused: resume it first" in text
    assert not DBTaskResult.objects.exists()


def test_replay_shows_the_count_and_waits_for_a_confirmation(csm, source, hook, workspace):
    for n in range(3):
        send(source, type="track", userId="u", event="E", messageId=f"r{n}")
    DBTaskResult.objects.all().delete()
    text = csm.post(url(hook, "replay"), window()).content.decode()
    assert "3 events received in this range will go through the event rules again" in text
    assert not DBTaskResult.objects.exists()
    response = csm.post(url(hook, "replay"), {**window(), "confirm": "yes"}, follow=True)
    assert "Replay of 3 events started" in response.content.decode()
    assert DBTaskResult.objects.filter(task_path__endswith="replay_events").count() == 1
    (entry,) = operations_in_audit(workspace)
    assert entry.user == "carla" and entry.reason.startswith("Replay of 3 events received ")


def test_api_operations_are_in_the_audit_trail(api, source, hook, workspace):
    (delivery,) = failed_deliveries(source, hook, 1)
    base = f"/api/v1/workspaces/{workspace.slug}"
    since = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    assert api.post(f"{base}/deliveries/{delivery.pk}/retry/").status_code == 202
    assert api.post(f"{base}/integrations/{hook.pk}/recover/", {"since": since}).status_code == 202
    response = api.post(f"{base}/integrations/{hook.pk}/replay/", {"since": since})
    assert response.status_code == 202 and response.json()["events"] == 1
    entries = operations_in_audit(workspace)
    assert [e.user for e in entries] == ["api-csm"] * 3
    replay, recover, retry = (e.reason for e in entries)
    assert retry == f"Retried delivery #{delivery.pk} (one manual attempt)"
    assert recover.startswith("Retried 1 failed deliveries created ")
    assert replay.startswith("Replay of 1 events received ")


def test_the_audit_trail_page_lists_operations(csm, source, hook):
    failed_deliveries(source, hook, 1)
    csm.post(url(hook, "recover"), {**window(), "confirm": "yes"})
    text = csm.get("/admin/integrations/audit-trail/").content.decode()
    assert re.search(r"Integration\s*<a[^>]*>Hook \(Webhook\)</a>\s*— Retried 1 failed", text)
