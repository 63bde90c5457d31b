"""The URLs an integration will call, checked when they are saved by the rule deliveries
are sent by (``http``): a host that resolves to a loopback, private, link-local or
reserved address is refused, in the same words, unless ``INTEGRATIONS_ALLOW_PRIVATE_URLS``
is on. A host that does not resolve now is refused too: it could not be checked.

The send path checks again at every connection (DNS may change in between).
"""

import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from integrations.delivery.http import blocked_message, is_public, unresolvable_message
from integrations.destinations.base import Destination

DEFAULT_PORTS = {"http": 80, "https": 443}
#: The integration's own URL field, beside the URL settings of its kind.
API_BASE_URL = "api_base_url"


def refusal(url: str) -> str | None:
    """Why deliveries to ``url`` would be refused, or None. Resolves its host now."""
    if settings.INTEGRATIONS_ALLOW_PRIVATE_URLS:
        return None
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None  # not a URL: its validator says so
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    except ValueError:
        return None  # a port out of range: its validator says so
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return unresolvable_message(host, exc)
    for *_, address in infos:
        if not is_public(ip := str(address[0])):
            return blocked_message(host, ip)
    return None


def url_problems(
    destination: type[Destination], public_settings: Mapping[str, Any], api_base_url: str | None
) -> dict[str, str]:
    """The refusals of an integration's URLs: each URL setting of its kind (by setting
    name) and its API base URL (``api_base_url``); empty when every one may be called."""
    urls = {
        spec.name: public_settings.get(spec.name)
        for spec in destination.settings_schema
        if spec.type == "url" and not spec.secret
    }
    urls[API_BASE_URL] = api_base_url
    problems = {}
    for name, url in urls.items():
        problem = refusal(url) if isinstance(url, str) and url else None
        if problem:
            problems[name] = problem
    return problems
