"""The admin's dashboard: a workspace's last 7 days, scoped to the user's workspaces."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.admin import charts, dashboard
from integrations.models import Delivery, Event, Workspace, WorkspaceMembership
from tests.test_fanout import make_integration

Role = WorkspaceMembership.Role
URL = reverse("admin:integrations_dashboard")
DELIVERED, FAILED = Delivery.Status.DELIVERED, Delivery.Status.FAILED


def at(days_ago: int, hour: int = 12) -> dt.datetime:
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


class Traffic:
    """Events and deliveries of one workspace, with a marker in every name."""

    def __init__(self, workspace: Workspace, tag: str) -> None:
        self.workspace, self.tag, self.count = workspace, tag, 0
        self.hook = make_integration(workspace, name=f"{tag} hook")
        self.cz = make_integration(workspace, kind="churnzero", name=f"{tag} churnzero")

    def event(self, when: dt.datetime, *deliveries: tuple, is_test: bool = False) -> Event:
        self.count += 1
        event = Event.objects.create(
            workspace=self.workspace,
            message_id=f"{self.tag}-{self.count}",
            type=Event.Type.TRACK,
            event=f"{self.tag} event",
            user_id=f"{self.tag}-user",
            received_at=when,
            timestamp=when,
            payload={},
            is_test=is_test,
        )
        for integration, status, *error in deliveries:
            Delivery.objects.create(
                event=event,
                integration=integration,
                status=status,
                created_at=when,
                last_error=error[0] if error else "",
                origin=Delivery.Origin.TEST if is_test else Delivery.Origin.LIVE,
            )
        return event


@pytest.fixture
def a(workspace) -> Traffic:
    traffic = Traffic(workspace, "alphamark")
    traffic.event(at(0), (traffic.hook, DELIVERED), (traffic.cz, FAILED, "alphamark reason"))
    traffic.event(at(0, 9), (traffic.hook, DELIVERED), (traffic.cz, DELIVERED))
    traffic.event(at(2), (traffic.hook, FAILED, "HTTP 400: bad"))
    traffic.event(at(6), (traffic.hook, DELIVERED))
    traffic.event(at(3))  # received, sent nowhere
    traffic.event(at(7), (traffic.hook, FAILED, "too old"))  # outside the 7 days
    traffic.event(at(0), (traffic.hook, FAILED, "test failure"), is_test=True)  # left out
    return traffic


@pytest.fixture
def b(db) -> Traffic:
    traffic = Traffic(Workspace.objects.create(name="Bravo", slug="bravo"), "bravomark")
    for _ in range(3):
        traffic.event(at(1), (traffic.hook, FAILED, "bravomark reason"))
    return traffic


def login(django_user_model, workspace: Workspace, role: str = Role.CSM) -> Client:
    user = django_user_model.objects.create_user(f"{role}-user", is_staff=True)
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def csm(django_user_model, workspace) -> Client:
    return login(django_user_model, workspace)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def table(text: str, table_id: str) -> list[list[str]]:
    """A table's body rows as lists of cell texts."""
    body = text[text.index(f'id="{table_id}"') :]
    body = body[body.index("<tbody>") : body.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows]
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in row] for row in cells]


def test_numbers_per_day(csm, a):
    rows = table(page(csm.get(URL)), "per-day-table")
    assert len(rows) == dashboard.DAYS
    numbers = [[int(n) for n in row[1:]] for row in rows]
    # Oldest first: 6 days ago ... today; events, delivered, failed, retrying.
    assert numbers == [
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
        [2, 3, 1, 0],
    ]


def test_numbers_per_integration_with_links_into_the_log(csm, a):
    text = page(csm.get(URL))
    rows = {" ".join(row[0].split()[:2]): row for row in table(text, "per-integration-table")}
    hook = rows["alphamark hook"]
    assert hook[2:9] == [
        "1 / 0 / 0",
        "0 / 0 / 0",
        "0 / 0 / 0",
        "0 / 0 / 0",
        "0 / 1 / 0",
        "0 / 0 / 0",
        "2 / 0 / 0",
    ]
    assert hook[9:12] == ["3", "1", "0"]
    assert rows["alphamark churnzero"][8:12] == ["1 / 1 / 0", "1", "1", "0"]
    log = reverse("admin:integrations_delivery_changelist")
    for integration in (a.hook, a.cz):
        for status in ("failed", "delivered"):
            link = f"{log}?integration__id__exact={integration.pk}&amp;status__exact={status}"
            assert link in text
    assert "<svg" in text and 'role="img"' in text
    assert "alphamark hook: 3 delivered, 1 failed, 0 retrying" in text  # the sparkline's label


def test_recent_failures(csm, a):
    text = page(csm.get(URL))
    rows = table(text, "failures-table")
    assert [(row[1], row[4]) for row in rows] == [
        ("alphamark churnzero", "alphamark reason"),
        ("alphamark hook", "HTTP 400: bad"),
    ]
    assert rows[0][2:4] == ["alphamark event", "alphamark-user"]
    for delivery in Delivery.objects.filter(status=FAILED, event__is_test=False)[:2]:
        assert reverse("admin:integrations_delivery_change", args=[delivery.pk]) in text
    assert "test failure" not in text and "too old" not in text


def test_at_most_twenty_recent_failures(csm, a):
    for _ in range(25):
        a.event(at(1), (a.hook, FAILED, "many"))
    assert len(table(page(csm.get(URL)), "failures-table")) == dashboard.RECENT_FAILURES


def test_a_csm_never_sees_another_workspaces_numbers(csm, a, b):
    for params in ({}, {"workspace": "bravo"}, {"workspace": "nope"}):
        text = page(csm.get(URL, params))
        assert "bravomark" not in text and "Bravo" not in text, params
    text = page(csm.get(URL, {"workspace": "bravo"}))
    assert "not one of your workspaces" in text
    assert "per-day-table" not in text


def test_the_workspace_selector_offers_the_users_workspaces(django_user_model, a, b):
    client = login(django_user_model, b.workspace)
    WorkspaceMembership.objects.create(
        user=django_user_model.objects.get(username="csm-user"), workspace=a.workspace
    )
    text = page(client.get(URL))
    assert re.findall(r'<option value="([^"]+)"', text) == ["acme", "bravo"]
    assert "alphamark hook" in text  # the first by name
    text = page(client.get(URL, {"workspace": "bravo"}))
    assert "bravomark reason" in text and "alphamark" not in text


def test_viewers_see_the_dashboard_and_outsiders_do_not(django_user_model, a):
    viewer = login(django_user_model, a.workspace, Role.VIEWER)
    assert "alphamark hook" in page(viewer.get(URL))
    outsider = django_user_model.objects.create_user("outsider", is_staff=True)
    client = Client()
    client.force_login(outsider)
    assert client.get(URL).status_code == 403


def test_superusers_choose_any_workspace(admin_client, a, b):
    assert "bravomark reason" in page(admin_client.get(URL, {"workspace": "bravo"}))


def test_the_dashboard_takes_a_few_queries_whatever_the_traffic(
    csm, a, django_assert_max_num_queries
):
    """Grouped queries (health included): as many with 12 integrations and more events as
    with 2."""
    with django_assert_max_num_queries(17):
        page(csm.get(URL))
    for index in range(10):
        integration = make_integration(a.workspace, name=f"more {index}")
        a.event(at(index % 7), (integration, DELIVERED), (integration, FAILED, "x"))
    with django_assert_max_num_queries(17):
        page(csm.get(URL))


def test_the_admin_index_links_to_the_dashboard(csm, a, admin_client):
    for client in (csm, admin_client):
        text = page(client.get(reverse("admin:index")))
        assert f'href="{URL}"' in text
    assert page(csm.get("/", follow=True)).count(f'href="{URL}"') >= 1


def test_nice_ceiling():
    assert [charts.nice_ceiling(n) for n in (0, 1, 3, 7, 10, 11, 42, 180)] == [
        1,
        1,
        5,
        10,
        10,
        20,
        50,
        200,
    ]
