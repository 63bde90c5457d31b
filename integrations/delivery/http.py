"""Outbound HTTP: one pooled session per worker process, guarded against SSRF.

Addresses are checked after DNS resolution, at the moment the socket connects, so a name
that resolves to a public address when checked and a private one when used (DNS
rebinding) is refused too. Loopback, private, link-local (cloud metadata), shared and
reserved addresses are refused unless ``INTEGRATIONS_ALLOW_PRIVATE_URLS`` is on, and so
are IPv6 addresses that lead to such an IPv4 host (NAT64, 6to4, Teredo, IPv4-mapped or
-compatible).
"""

import ipaddress
import re
import socket
import time
from dataclasses import dataclass, field
from functools import cache
from http.cookiejar import DefaultCookiePolicy
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from integrations.destinations.base import OutboundRequest

RESPONSE_BODY_LIMIT = 20 * 1024


class BlockedAddressError(NewConnectionError):
    """The destination resolves to an address outbound calls may not reach."""

    def __init__(self, conn: Any, message: str) -> None:
        super().__init__(conn, message)
        self.reason = message


# NAT64 (RFC 6052): the last 32 bits are the IPv4 host the translator connects to.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): a network's own translator, to its own addresses.
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 hosts an IPv6 address leads to, for the forms that carry one: IPv4-mapped
    (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``),
    6to4 (``2002:AABB:CCDD::``) and Teredo (``2001:0::``, server and client). None for
    other addresses."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if int(ip) >> 32 == 0 or ip in NAT64_WELL_KNOWN:
        return (ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    return None


def is_public(address: str) -> bool:
    """Whether outbound calls may reach this address: a global unicast address, and, for
    IPv6 forms that lead to an IPv4 host, a public IPv4 host."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE:
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return all(_is_public_ip(host) for host in embedded)
    return _is_public_ip(ip)


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def blocked_message(host: str, address: str) -> str:
    """Why a host is refused (at send, and when a URL setting is saved)."""
    return (
        f"refused: {host} resolves to {address}, a private, loopback or link-local address "
        "(set INTEGRATIONS_ALLOW_PRIVATE_URLS to allow it)"
    )


def unresolvable_message(host: str, error: Exception) -> str:
    return f"cannot resolve {host}: {error}"


def _guarded_connect(conn: HTTPConnection) -> socket.socket:
    """Resolve, check every address, connect to the first allowed one."""
    host, port = conn._dns_host, conn.port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NewConnectionError(conn, unresolvable_message(host, exc)) from exc
    allow_private = settings.INTEGRATIONS_ALLOW_PRIVATE_URLS
    error: Exception | None = None
    for family, kind, proto, _, address in infos:
        if not allow_private and not is_public(ip := str(address[0])):
            error = BlockedAddressError(conn, blocked_message(host, ip))
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if conn.timeout is not None:
                sock.settimeout(conn.timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    if isinstance(error, BlockedAddressError):
        raise error
    raise NewConnectionError(conn, f"cannot connect to {host}:{port}: {error}")


class GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self)


class GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self)


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }


@cache
def user_agent() -> str:
    try:
        release = version("integration-console")
    except PackageNotFoundError:
        release = "dev"
    return f"integration-console/{release} (+delivery worker)"


@cache
def session() -> requests.Session:
    """The process's session: pooled connections, no proxies from the environment."""
    http = requests.Session()
    http.trust_env = False
    # One session serves every workspace's integrations, and its requests go out from
    # several threads: cookies a vendor sets are not kept, so none is sent on elsewhere.
    http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = GuardedAdapter(pool_connections=32, pool_maxsize=32, max_retries=0)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = user_agent()
    return http


@dataclass
class HTTPExchange:
    """A request as sent and what came back (or the error instead)."""

    request: OutboundRequest
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""
    duration_ms: float = 0.0
    # A timeout or connection failure: the vendor did not answer at all.
    unreachable: bool = False
    # Refused before connecting: the address is not one outbound calls may reach.
    blocked: bool = False

    @property
    def sent_headers(self) -> dict[str, str]:
        return {"User-Agent": user_agent(), **self.request.headers}


TEXTUAL = re.compile(r"^(text/|application/([\w.+-]*\+)?(json|xml|x-www-form-urlencoded))")


def _read_limited(response: requests.Response) -> str:
    """The body as storable text: at most 20 KB; a binary body (ChurnZero's GIF) as a
    placeholder, since text columns cannot hold arbitrary bytes (PostgreSQL refuses NUL)."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=8192):
        chunks.append(chunk)
        size += len(chunk)
        if size > RESPONSE_BODY_LIMIT:
            break
    data = b"".join(chunks)[:RESPONSE_BODY_LIMIT]
    content_type = response.headers.get("Content-Type", "").strip().lower()
    if data and content_type and not TEXTUAL.match(content_type):
        return f"[{len(data)}-byte {content_type.split(';')[0]} body]"
    text = data.decode(response.encoding or "utf-8", errors="replace")
    return text.replace("\x00", "\\u0000")


def prepare(request: OutboundRequest) -> requests.PreparedRequest:
    """The request as the session would send it: its headers (requests' defaults and our
    User-Agent) under the request's own, and Basic auth from credentials in the URL. The
    session keeps no cookies and has no hooks, proxies or redirects to follow, so the rest
    of what ``Session.request`` does per call is left out (about 120 us of CPU a request,
    more than any one part of a delivery's bookkeeping)."""
    headers = CaseInsensitiveDict(session().headers)
    headers.update(request.headers)
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=request.method,
        url=request.url,
        headers=headers,
        data=request.body.encode() if request.body else None,
    )
    return prepared


def send(request: OutboundRequest) -> HTTPExchange:
    """Send one request through the session's pooled adapter; never raises for network
    or HTTP errors."""
    exchange = HTTPExchange(request=request)
    started = time.perf_counter()
    try:
        prepared = prepare(request)
        with (
            session()
            .get_adapter(request.url)
            .send(
                prepared,
                stream=True,
                timeout=(settings.DELIVERY_CONNECT_TIMEOUT, settings.DELIVERY_READ_TIMEOUT),
            ) as response
        ):
            exchange.status = response.status_code
            exchange.headers = dict(response.headers)
            exchange.body = _read_limited(response)
    except requests.Timeout as exc:
        exchange.error = f"timed out: {_innermost(exc)}"
        exchange.unreachable = True
    except requests.ConnectionError as exc:
        cause = _innermost(exc)
        if isinstance(cause, BlockedAddressError):
            exchange.error = cause.reason
            exchange.blocked = True
        else:
            # The host too: a DNS error names none ("Name or service not known").
            host = urlsplit(request.url).hostname or "the vendor"
            exchange.error = f"connection failed ({host}): {cause}"
            exchange.unreachable = True
    except requests.RequestException as exc:
        exchange.error = f"request failed: {_innermost(exc)}"
    exchange.duration_ms = (time.perf_counter() - started) * 1000
    return exchange


def _innermost(exc: BaseException) -> BaseException:
    """The innermost cause of a requests/urllib3 error: the one that says what happened."""
    seen = exc
    while not isinstance(seen, BlockedAddressError):
        nxt = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        if not isinstance(nxt, BaseException) or nxt is seen:
            break
        seen = nxt
    return seen
