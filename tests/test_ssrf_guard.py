"""The SSRF guard: IPv6 forms that lead to an IPv4 host are judged by that host, and
integrations send over HTTP(S) only."""

import ipaddress
import socket
from unittest import mock

import pytest
from django.core.exceptions import ValidationError

from integrations.delivery import http
from integrations.delivery.http import embedded_ipv4, is_public
from integrations.destinations.base import OutboundRequest
from integrations.models import Integration


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # NAT64, well-known prefix: the translator connects to the embedded IPv4 host.
        ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254, cloud metadata
        ("64:ff9b::7f00:1", False),  # 127.0.0.1
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::808:808", True),  # 8.8.8.8
        # Local-use NAT64 leads into the network's own addresses.
        ("64:ff9b:1::808:808", False),
        # 6to4: the IPv4 relay address is bits 16-48.
        ("2002:a9fe:a9fe::1", False),
        ("2002:c0a8:0101::1", False),  # 192.168.1.1
        ("2002:808:808::1", True),
        # IPv4-compatible (deprecated) ::a.b.c.d.
        ("::127.0.0.1", False),
        ("::169.254.169.254", False),
        ("::8.8.8.8", True),
        # Teredo: server and client (obfuscated) IPv4 addresses.
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # client 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # client 8.8.8.8, server 65.54.227.120
        # IPv4-mapped, as before.
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        # Unspecified and loopback are IPv4-compatible-shaped: still refused.
        ("::", False),
        ("::1", False),
        # Ordinary global IPv6 and multicast.
        ("2606:4700::1111", True),
        ("ff02::1", False),
        ("224.0.0.1", False),
    ],
)
def test_address_classification(address, public):
    assert is_public(address) is public


def test_embedded_addresses_are_decoded():
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::c000:0201")) == (
        ipaddress.IPv4Address("192.0.2.1"),
    )
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None


def test_a_name_resolving_to_a_nat64_metadata_address_is_refused(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    resolved = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a9fe:a9fe", 80, 0, 0))]
    with mock.patch("socket.getaddrinfo", return_value=resolved):
        exchange = http.send(OutboundRequest("POST", "http://vendor.example/in", {}, "{}"))
    assert exchange.blocked
    assert "64:ff9b::a9fe:a9fe" in exchange.error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["ftp://vendor.example/", "ftps://vendor.example/", "file:///etc/passwd"]
)
def test_api_base_url_must_be_http_or_https(workspace, url):
    integration = Integration(workspace=workspace, name="Hook", kind="webhook", api_base_url=url)
    integration.set_settings({"url": "https://hooks.example.com/in"})
    with pytest.raises(ValidationError) as raised:
        integration.full_clean()
    assert "api_base_url" in raised.value.message_dict


@pytest.mark.django_db
def test_the_api_refuses_an_ftp_api_base_url(member_client, workspace):
    client = member_client()
    response = client.post(
        "/api/v1/workspaces/acme/integrations/",
        {
            "name": "Hook",
            "kind": "webhook",
            "settings": {"url": "https://hooks.example.com/in"},
            "api_base_url": "ftp://vendor.example/",
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "api_base_url" in response.json()["errors"]
    ok = client.post(
        "/api/v1/workspaces/acme/integrations/",
        {
            "name": "Hook",
            "kind": "webhook",
            "settings": {"url": "https://hooks.example.com/in"},
            "api_base_url": "https://eu.vendor.example/",
        },
        format="json",
    )
    assert ok.status_code == 201, ok.content
