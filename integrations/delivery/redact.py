"""Secrets never reach the delivery log: headers, URLs and bodies are redacted before
they are stored."""

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from integrations.credentials import MASK, SENSITIVE_FIELDS, SENSITIVE_HEADER, url_credentials

if TYPE_CHECKING:
    from integrations.models import Integration

REDACTED = "[REDACTED]"


class Redactor:
    """Replaces an integration's secret values, and credential fields, with a marker."""

    def __init__(self, secrets: Iterable[Any]) -> None:
        values = {str(s) for s in secrets if isinstance(s, str) and len(s) >= 4}
        self.secrets = sorted(values, key=len, reverse=True)

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
        return cls(values)

    def text(self, value: str) -> str:
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
        try:
            data = json.loads(body)
        except ValueError:
            return self.text(body)
        if not _has_sensitive_field(data):
            return self.text(body)
        return self.text(json.dumps(_without_sensitive_fields(data), ensure_ascii=False))


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


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
