"""URLs an integration will call are refused when saved, by the rule and in the words of
the send path, unless private URLs are allowed. Offline: IP literals, ``localhost`` and a
monkeypatched resolver only."""

import socket

import pytest
from django.urls import reverse

from integrations.delivery import http, url_guard
from integrations.destinations.base import OutboundRequest
from integrations.models import Integration, WorkspaceMembership
from tests.browser_form import form_data
from tests.test_fanout import make_integration

PUBLIC = "https://93.184.216.34/in"  # an IP literal: no lookup


@pytest.fixture
def private_urls_refused(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False


@pytest.fixture
def api(member_client):
    return member_client(WorkspaceMembership.Role.CSM, username="api-csm")


def send_time_refusal(url: str) -> str:
    """What the send path says for ``url`` (it refuses before connecting)."""
    exchange = http.send(OutboundRequest("POST", url, body="{}"))
    assert exchange.blocked, exchange.error
    return exchange.error


def integrations_url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.slug}/integrations/"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/in",
        "http://localhost:8080/in",
        "http://10.1.2.3/in",
        "http://[::1]/in",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_the_api_refuses_a_private_webhook_url_in_the_send_paths_words(
    private_urls_refused, api, workspace, url
):
    body = {"name": "Hook", "kind": "webhook", "settings": {"url": url}}
    response = api.post(integrations_url(workspace), body, format="json")
    assert response.status_code == 400, response.json()
    message = response.json()["errors"]["settings"]["url"][0]
    assert message == send_time_refusal(url)
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in message
    assert not Integration.objects.exists()


def test_the_api_refuses_a_private_api_base_url(private_urls_refused, api, workspace):
    hook = make_integration(workspace, kind="segment")
    url = f"{integrations_url(workspace)}{hook.pk}/"
    response = api.patch(url, {"api_base_url": "http://127.0.0.1:1/"}, format="json")
    assert response.status_code == 400
    assert "resolves to 127.0.0.1" in response.json()["errors"]["api_base_url"][0]
    assert api.patch(url, {"api_base_url": PUBLIC}, format="json").status_code == 200


def test_the_api_refuses_a_private_churnzero_instance(private_urls_refused, api, workspace):
    settings = {"app_key": "k", "instance_url": "http://192.168.0.10"}
    body = {"name": "CZ", "kind": "churnzero", "settings": settings}
    response = api.post(integrations_url(workspace), body, format="json")
    assert response.status_code == 400
    assert "192.168.0.10" in response.json()["errors"]["settings"]["instance_url"][0]


def test_a_public_url_is_accepted(private_urls_refused, api, workspace):
    body = {"name": "Hook", "kind": "webhook", "settings": {"url": PUBLIC}}
    assert api.post(integrations_url(workspace), body, format="json").status_code == 201


def test_a_host_that_does_not_resolve_is_refused(private_urls_refused, api, workspace, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(url_guard.socket, "getaddrinfo", no_such_host)
    body = {"name": "Hook", "kind": "webhook", "settings": {"url": "https://nowhere.invalid/x"}}
    response = api.post(integrations_url(workspace), body, format="json")
    assert response.status_code == 400
    message = response.json()["errors"]["settings"]["url"][0]
    assert message.startswith("cannot resolve nowhere.invalid")


def test_a_name_resolving_to_one_private_address_is_refused(
    private_urls_refused, api, workspace, monkeypatch
):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(url_guard.socket, "getaddrinfo", resolve)
    body = {"name": "Hook", "kind": "webhook", "settings": {"url": "https://split.example/x"}}
    response = api.post(integrations_url(workspace), body, format="json")
    assert response.status_code == 400
    assert "split.example resolves to 10.0.0.7" in response.json()["errors"]["settings"]["url"][0]


def test_private_urls_are_accepted_when_allowed(settings, api, workspace):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = True
    body = {"name": "Hook", "kind": "webhook", "settings": {"url": "http://127.0.0.1:9/in"}}
    assert api.post(integrations_url(workspace), body, format="json").status_code == 201


def test_the_admin_refuses_a_private_url_on_save(private_urls_refused, csm, workspace):
    hook = make_integration(workspace)
    change = reverse("admin:integrations_integration_change", args=[hook.pk])
    data = form_data(csm.get(change).content.decode(), "integration_form")
    data["setting__url"] = "http://127.0.0.1:9000/in"
    data["api_base_url"] = "http://localhost/"
    response = csm.post(change, data)
    assert response.status_code == 200
    text = response.content.decode()
    assert send_time_refusal("http://127.0.0.1:9000/in") in text
    assert "refused: localhost resolves to" in text
    hook.refresh_from_db()
    assert hook.settings["url"] == "https://hooks.example.com/in"
    data["setting__url"], data["api_base_url"] = PUBLIC, ""
    assert csm.post(change, data).status_code == 302
