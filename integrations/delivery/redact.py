"""Secrets never reach the delivery log: headers, URLs and bodies are redacted before
they are stored."""

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from integrations.credentials import (
    MASK,
    SENSITIVE_FIELD_PARTS,
    SENSITIVE_FIELDS,
    SENSITIVE_HEADER,
    url_credentials,
)

if TYPE_CHECKING:
    from integrations.models import Integration

REDACTED = "[REDACTED]"
# Shorter values are not treated as secrets (they would match ordinary text).
MIN_SECRET_LENGTH = 4
# Public settings longer than this (URLs, say) are not the user half of a credential.
MAX_PARTNER_LENGTH = 200


class Redactor:
    """Replaces an integration's secret values, and credential fields, with a marker.

    A secret is also replaced in the forms a vendor that echoes our request would show
    it in: base64 of the Basic-auth credentials made from it (``secret:``, ``:secret``,
    ``secret:secret``, and with a public setting as the other half, Customer.io's
    ``site_id:api_key``), of the secret itself, and URL-encoded. The list is built once
    per integration run; redacting is one pass per form.
    """

    def __init__(self, secrets: Iterable[Any], partners: Iterable[Any] = ()) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        halves = {p for p in partners if isinstance(p, str) and 0 < len(p) <= MAX_PARTNER_LENGTH}
        forms: set[str] = set()
        for secret in values:
            forms |= encoded_forms(secret, halves)
        self.secrets = sorted(forms, key=len, reverse=True)
        # Finds any of them in one pass: most text holds none, and is then left as it is.
        self.any_secret = re.compile("|".join(map(re.escape, self.secrets))) if forms else None

    @classmethod
    def for_integration(cls, integration: "Integration") -> "Redactor":
        """The redactor of everything an integration's settings hold that is secret."""
        return cls.for_settings(
            integration.settings,
            integration.secret_settings or {},
            integration.destination.secret_names(),
        )

    @classmethod
    def for_settings(
        cls,
        public: Mapping[str, Any],
        secret: Mapping[str, Any],
        secret_fields: Iterable[str] = (),
    ) -> "Redactor":
        """Secret settings, and the credentials within settings: the values of custom
        headers with a sensitive name, and the user info and credential query parameters
        of URLs (kept with the secrets, see ``integrations.credentials``).

        A URL among the secrets is a setting kept there for its credentials (only those
        are redacted), unless its name is in ``secret_fields``: a URL that is itself the
        credential (ChartMogul's webhook URL) is redacted whole.
        """
        whole = set(secret_fields)
        values = [
            v for k, v in secret.items() if isinstance(v, str) and (k in whole or not _is_url(v))
        ]
        for value in (*public.values(), *secret.values()):
            if isinstance(value, Mapping):  # custom headers
                for name, header in value.items():
                    if SENSITIVE_HEADER.search(str(name)) and isinstance(header, str):
                        # "Bearer <token>": the token alone is secret too.
                        values += [header, header.split()[-1] if header.split() else header]
            elif isinstance(value, str) and _is_url(value):
                values += [c for c in url_credentials(value) if c != MASK]
        # The other public settings may be the other half of a Basic-auth credential.
        return cls(values, partners=public.values())

    def text(self, value: str) -> str:
        if self.any_secret is None or not self.any_secret.search(value):
            return value
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name: REDACTED if SENSITIVE_HEADER.search(name) else self.text(str(value))
            for name, value in headers.items()
        }

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.query:
            query = [
                (key, REDACTED if key.lower() in SENSITIVE_FIELDS else value)
                for key, value in parse_qsl(parts.query, keep_blank_values=True)
            ]
            parts = parts._replace(query=urlencode(query, safe="[]"))
        if parts.password:
            parts = parts._replace(netloc=f"{REDACTED}@{parts.hostname}")
        return self.text(urlunsplit(parts))

    def body(self, body: str) -> str:
        """The body with secrets replaced; as sent when it holds no credential field."""
        if not _may_hold_sensitive_field(body):
            return self.text(body)
        try:
            data = json.loads(body)
        except ValueError:
            return self.text(body)
        if not _has_sensitive_field(data):
            return self.text(body)
        return self.text(json.dumps(_without_sensitive_fields(data), ensure_ascii=False))


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _may_hold_sensitive_field(body: str) -> bool:
    """False when no key of the body, once parsed, can be a credential field's name: it is
    ASCII, has no ``\\u`` escapes, and no part of those names appears in it."""
    if not body.isascii() or "\\u" in body:
        return True
    lowered = body.lower()
    return any(part in lowered for part in SENSITIVE_FIELD_PARTS)


def _has_sensitive_field(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            key.lower() in SENSITIVE_FIELDS or _has_sensitive_field(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_has_sensitive_field(item) for item in value)
    return False


def _without_sensitive_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if key.lower() in SENSITIVE_FIELDS else _without_sensitive_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_sensitive_fields(item) for item in value]
    return value


def encoded_forms(secret: str, partners: Iterable[str] = ()) -> set[str]:
    """The secret as typed, base64 of it and of Basic-auth credentials made from it
    (padded and not, standard and URL-safe alphabets), and each of those URL-encoded."""
    credentials = {secret, f"{secret}:", f":{secret}", f"{secret}:{secret}"}
    for partner in partners:
        credentials |= {f"{partner}:{secret}", f"{secret}:{partner}"}
    forms = {secret}
    for text in credentials:
        raw = text.encode()
        for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            forms |= {encoded, encoded.rstrip("=")}
    for form in list(forms):
        forms |= {quote(form, safe=""), quote_plus(form, safe="")}
    return forms
