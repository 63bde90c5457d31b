"""An outage to test with: a ChurnZero integration saved with an Instance URL whose host
does not resolve (``analytics.churnzero``, as typed without ``.net``), and name resolution
faked so that nothing reaches the network."""

import socket
from typing import Any

import pytest

from integrations.models import Integration, Source, Workspace
from tests.traffic import send

UNRESOLVABLE = "analytics.churnzero"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def resolve_nothing_but_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``getaddrinfo`` fails for every host but the loopback (the live server, the fake
    vendors), as it would for a host that does not exist."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in LOOPBACK:
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def unresolvable_churnzero(workspace: Workspace, name: str = "ChurnZero") -> Integration:
    """Saved before URLs were checked at save time: the model takes it as it is."""
    integration = Integration(workspace=workspace, name=name, kind="churnzero")
    integration.set_settings({"app_key": "cz-app-key", "instance_url": f"https://{UNRESOLVABLE}"})
    integration.save()
    return integration


def churnzero_traffic(source: Source, count: int, prefix: str = "cz") -> None:
    for number in range(count):
        send(
            source,
            type="track",
            userId=f"{prefix}-user-{number}",
            event="Login",
            messageId=f"{prefix}-{number}",
            properties={"accountExternalId": "A-1", "contactExternalId": f"C-{number}"},
        )
