"""What counts as a credential in headers and URLs, and a URL's credentials set apart.

A URL setting may carry credentials: user info (``https://user:pass@host``) and query
parameters such as ``?api_key=``. They are secrets: pages, the API and the history show the
URL with each credential replaced by :data:`MASK` (:func:`masked_url`), while the URL as
typed is kept with the encrypted secret settings. A masked URL submitted back is filled in
from the stored one (:func:`unmasked_url`), so an edit need not retype the credentials.
"""

import re
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

#: Header names whose values are credentials (for the delivery log's redaction).
SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|password|cookie|session", re.IGNORECASE)
#: Field names that hold credentials in vendors' query strings and bodies.
SENSITIVE_FIELDS = frozenset(
    {"appkey", "apikey", "api_key", "writekey", "write_key", "secret", "password", "token"}
    | {"access_token", "client_secret"}
)
#: A part of every name in ``SENSITIVE_FIELDS``: text without any of them (in any case)
#: holds no such field, so the log need not parse a body to know it has none.
SENSITIVE_FIELD_PARTS = ("key", "secret", "password", "token")
#: What a credential is shown as, and what, submitted back, keeps the stored one.
MASK = "********"
# Signed-URL parameters (Azure SAS, pre-signed URLs) that the patterns above miss.
_SIGNATURE_PARAMETERS = frozenset({"sig", "signature"})


def is_credential_parameter(name: str) -> bool:
    """Whether a query parameter of this name holds a credential (``api_key``, ``token``…)."""
    lowered = name.lower()
    return (
        lowered in SENSITIVE_FIELDS
        or lowered in _SIGNATURE_PARAMETERS
        or SENSITIVE_HEADER.search(name) is not None
    )


def _pairs(query: str) -> list[tuple[str, str | None]]:
    """The raw ``name``/``value`` pieces of a query string (None: no ``=``), in order."""
    pairs: list[tuple[str, str | None]] = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        pairs.append((name, value if equals else None))
    return pairs


def _query(pairs: list[tuple[str, str | None]]) -> str:
    return "&".join(name if value is None else f"{name}={value}" for name, value in pairs)


def _userinfo(netloc: str) -> tuple[str, str]:
    """``(userinfo, host[:port])`` of a URL's netloc; userinfo is empty when absent."""
    userinfo, at, host = netloc.rpartition("@")
    return (userinfo, host) if at else ("", netloc)


def url_credentials(url: str) -> list[str]:
    """The credentials in a URL: its user name and password, the values of its credential
    query parameters; each as written and decoded."""
    parts = urlsplit(url)
    found: list[str] = []
    userinfo, _ = _userinfo(parts.netloc)
    if userinfo:
        found += [piece for piece in userinfo.split(":", 1) if piece]
        found += [unquote(piece) for piece in userinfo.split(":", 1) if piece]
    for name, value in _pairs(parts.query):
        if value and is_credential_parameter(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return list(dict.fromkeys(found))


def masked_url(url: str) -> str:
    """The URL with its user info and credential query values replaced by :data:`MASK`;
    everything else as written."""
    parts = urlsplit(url)
    userinfo, host = _userinfo(parts.netloc)
    netloc = f"{MASK}@{host}" if userinfo else parts.netloc
    pairs = [
        (name, MASK if value and is_credential_parameter(unquote_plus(name)) else value)
        for name, value in _pairs(parts.query)
    ]
    query = _query(pairs) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return bool(_userinfo(parts.netloc)[0]) or any(
        value and is_credential_parameter(unquote_plus(name)) for name, value in _pairs(parts.query)
    )


def unmasked_url(submitted: str, stored: str | None) -> str:
    """``submitted`` with each :data:`MASK` (user info, credential query values) replaced
    by the value at the same place of the ``stored`` URL.

    Raises ``ValueError`` saying which credential to type again when the stored URL has
    none to give.
    """
    if MASK not in submitted:
        return submitted
    parts = urlsplit(submitted)
    old = urlsplit(stored or "")
    userinfo, host = _userinfo(parts.netloc)
    if userinfo == MASK:
        old_userinfo, _ = _userinfo(old.netloc)
        if not old_userinfo:
            raise ValueError("type the user name and password of the URL again")
        parts = parts._replace(netloc=f"{old_userinfo}@{host}")
    stored_values: dict[str, list[str]] = {}
    for name, value in _pairs(old.query):
        if value:
            stored_values.setdefault(name, []).append(value)
    pairs = []
    seen: dict[str, int] = {}
    for name, value in _pairs(parts.query):
        if value == MASK:
            candidates = stored_values.get(name, [])
            if not candidates:
                raise ValueError(f"type the value of the URL's {unquote_plus(name)} again")
            index = seen.get(name, 0)
            value = candidates[min(index, len(candidates) - 1)]
            seen[name] = index + 1
        pairs.append((name, value))
    if parts.query:
        parts = parts._replace(query=_query(pairs))
    return urlunsplit(parts)


def merged_headers(submitted: object, stored: dict[str, str] | None) -> object:
    """Custom headers as submitted, each value left empty (or :data:`MASK`) taken from the
    ``stored`` headers: header values are write-only, the names are what pages show.

    ``submitted`` is a mapping of names to values, or a list of names (the public form:
    every header kept as it is); a header left out is removed. Anything else comes back
    as given, for the setting's validation to refuse. Raises ``ValueError`` for a header
    without a value when none is stored.
    """
    stored = stored or {}
    if isinstance(submitted, list | tuple):
        submitted = dict.fromkeys(submitted, "")
    if not isinstance(submitted, dict):
        return submitted
    merged: dict[object, object] = {}
    for name, value in submitted.items():
        if value is None or value in ("", MASK):
            if name not in stored:
                raise ValueError(f"{name}: give its value (no value is stored for it)")
            value = stored[name]
        merged[name] = value
    return merged


def without_masked(url: str) -> tuple[str, list[str]]:
    """``url`` without its masked credentials (user info, credential query parameters
    shown as :data:`MASK`), and what was taken out, by name: for a URL whose credentials
    must be entered again (an imported export)."""
    if MASK not in url:
        return url, []
    parts = urlsplit(url)
    userinfo, host = _userinfo(parts.netloc)
    removed = []
    if userinfo == MASK:
        parts = parts._replace(netloc=host)
        removed.append("user name and password")
    kept = []
    for name, value in _pairs(parts.query):
        if value == MASK:
            removed.append(unquote_plus(name))
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=_query(kept))), removed
