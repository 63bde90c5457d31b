"""The live event debugger of a source: its page and the JSON endpoint it polls."""

import datetime as dt
import itertools

import pytest
from django.test import Client
from django.utils import timezone

from integrations.admin import debugger
from integrations.ingest import accept
from integrations.models import Source, Workspace, WorkspaceMembership
from integrations.sources.segment_spec import normalize
from tests.admin_clients import member


def page_url(source) -> str:
    return f"/admin/integrations/source/{source.pk}/debugger/"


def events_url(source) -> str:
    return f"{page_url(source)}events/"


CLOCK = itertools.count()


def receive(source, received_at=None, **message):
    """Accept a message; unless told when, each is received a millisecond after the last
    (receivedAt keeps milliseconds: events of the same one would sort by chance)."""
    message = {"type": "track", "userId": "u1", "event": "Signed Up", **message}
    if received_at is None:
        received_at = timezone.now() + dt.timedelta(milliseconds=next(CLOCK))
    accept(source, [normalize(message, received_at=received_at)])


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [event["name"] for event in response.json()["events"]]


def test_the_source_page_links_to_its_debugger(csm, source):
    page = csm.get(f"/admin/integrations/source/{source.pk}/change/").content.decode()
    assert f'href="{page_url(source)}"' in page


def test_the_page_polls_the_endpoint(viewer, source):
    response = viewer.get(page_url(source))
    assert response.status_code == 200
    text = response.content.decode()
    assert f'data-events-url="{events_url(source)}"' in text
    assert "Live debugger" in text and 'id="debugger-pause"' in text


def test_newest_events_first_with_what_the_list_shows(viewer, source):
    receive(source, messageId="a", event="First", userId="u1")
    receive(source, messageId="b", type="page", name="Pricing", anonymousId="anon-9", userId=None)
    body = viewer.get(events_url(source)).json()
    first, second = body["events"]
    assert (first["type"], first["name"], first["user_id"]) == ("page", "Pricing", "")
    assert first["anonymous_id"] == "anon-9"
    assert second["name"] == "First" and second["payload"]["event"] == "First"
    assert second["received_at"].endswith("Z") and len(second["received_at"]) == 27
    assert body["cursor"].endswith("Z")


def test_filters_by_type_event_name_and_user(viewer, source):
    receive(source, messageId="a", event="Signed Up", userId="u1")
    receive(source, messageId="b", event="Upgraded", userId="u2")
    receive(source, messageId="c", type="identify", userId="u2", event=None)
    assert names(viewer.get(events_url(source), {"event": "Upgraded"})) == ["Upgraded"]
    assert names(viewer.get(events_url(source), {"user_id": "u2"})) == ["", "Upgraded"]
    assert names(viewer.get(events_url(source), {"type": "identify"})) == [""]
    both = {"type": "track", "user_id": "u1"}
    assert names(viewer.get(events_url(source), both)) == ["Signed Up"]


def test_only_this_sources_events(viewer, source, workspace):
    other = Source.objects.create(workspace=workspace, name="App")
    receive(other, messageId="x", event="Elsewhere")
    receive(source, messageId="y", event="Here")
    assert names(viewer.get(events_url(source))) == ["Here"]


def test_the_cursor_brings_new_events_and_late_commits(viewer, source):
    receive(
        source, messageId="old", event="Old", received_at=timezone.now() - dt.timedelta(hours=1)
    )
    cursor = viewer.get(events_url(source)).json()["cursor"]
    # Stamped before the cursor but committed after it (a slow batch): still offered.
    receive(
        source, messageId="late", event="Late", received_at=timezone.now() - dt.timedelta(seconds=5)
    )
    receive(source, messageId="new", event="New")
    assert names(viewer.get(events_url(source), {"since": cursor})) == ["New", "Late"]


def test_the_first_call_looks_back_a_day(viewer, source):
    receive(source, messageId="ancient", received_at=timezone.now() - dt.timedelta(days=2))
    assert names(viewer.get(events_url(source))) == []
    long_ago = (timezone.now() - dt.timedelta(days=3)).isoformat()
    assert names(viewer.get(events_url(source), {"since": long_ago})) == []


def test_at_most_a_page_of_events(viewer, source, monkeypatch):
    monkeypatch.setattr(debugger, "PAGE", 2)
    for i in range(4):
        receive(source, messageId=f"m{i}", event=f"E{i}")
    assert names(viewer.get(events_url(source))) == ["E3", "E2"]


@pytest.mark.parametrize(
    "params", [{"since": "yesterday"}, {"type": "purchase"}, {"event": "x" * 201}]
)
def test_bad_parameters_are_a_400(viewer, source, params):
    response = viewer.get(events_url(source), params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == set(params)


def test_other_workspaces_sources_are_out_of_reach(django_user_model, source):
    other = Workspace.objects.create(name="Other", slug="other")
    outsider = member(django_user_model, other, WorkspaceMembership.Role.CSM, "outsider")
    receive(source, messageId="secret", event="Private")
    assert outsider.get(page_url(source)).status_code == 404
    response = outsider.get(events_url(source))
    assert response.status_code == 404 and b"Private" not in response.content


def test_anonymous_users_are_sent_to_the_login(source):
    response = Client().get(events_url(source))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_answers_are_not_cached(viewer, source):
    assert "no-cache" in viewer.get(events_url(source))["Cache-Control"]
