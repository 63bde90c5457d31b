"""Every list of the configuration API pages with bounded ``limit`` and ``offset``: a
value out of range is a 400 naming the parameter, never a database error."""

import pytest
import responses

from integrations.api.pagination import MAX_LIMIT
from integrations.models import WorkspaceMembership
from tests.traffic import deliver_due, send

LISTS = [
    "/api/v1/workspaces/",
    "/api/v1/workspaces/acme/sources/",
    "/api/v1/workspaces/acme/integrations/",
    "/api/v1/workspaces/acme/events/",
    "/api/v1/workspaces/acme/deliveries/",
    "/api/v1/workspaces/acme/members/",
]
HUGE = str(2**64)


@pytest.fixture
def client(member_client, source, webhook_integration):
    """An admin's client, with an event and its delivery in every list."""
    with responses.RequestsMock() as vendor:
        vendor.post("https://hooks.example.com/in", status=200)
        send(source, type="track", userId="u1", event="Signed Up", messageId="m1")
        deliver_due()
    return member_client(WorkspaceMembership.Role.ADMIN)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "query",
    [
        {"limit": HUGE},  # before: 500, "bigint out of range"
        {"offset": HUGE},
        {"limit": str(MAX_LIMIT + 1)},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"offset": "-5"},
        {"limit": "9" * 5000},  # longer than Python turns into an int
    ],
)
def test_out_of_range_paging_is_a_400(client, path, query):
    response = client.get(path, query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_pagination"
    assert next(iter(query)) in body["message"]


@pytest.mark.parametrize("path", LISTS)
def test_paging_within_bounds(client, path):
    first = client.get(path, {"limit": str(MAX_LIMIT), "offset": "0"})
    assert first.status_code == 200, first.content
    assert first.json()["count"] >= 1
    beyond = client.get(path, {"offset": "1000000"})
    assert beyond.status_code == 200
    assert beyond.json()["results"] == []


def test_the_default_page_is_50(client, source):
    for number in range(60):
        send(source, type="track", userId="u1", event="E", messageId=f"many-{number}")
    body = client.get("/api/v1/workspaces/acme/events/").json()
    assert body["count"] == 61
    assert len(body["results"]) == 50
    assert "limit=50" in body["next"]
