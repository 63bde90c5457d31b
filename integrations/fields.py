"""Model fields of the integrations app."""

import json
from typing import Any

from django.db import models

from integrations import crypto


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token: unreadable in the database and in dumps."""

    description = "Text encrypted at rest"

    def encode(self, value: Any) -> str:
        return value

    def decode(self, value: str) -> Any:
        return value

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return self.decode(crypto.decrypt(value))

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return crypto.encrypt(self.encode(value))

    def value_to_string(self, obj: models.Model) -> str:
        # Serialized dumps keep the encrypted form.
        return self.get_prep_value(self.value_from_object(obj)) or ""


class EncryptedJSONField(EncryptedTextField):
    """A JSON value (a dict of secret settings, say) encrypted at rest."""

    description = "JSON encrypted at rest"

    # What django-stubs types the model attribute as (a TextField's would be str).
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def encode(self, value: Any) -> str:
        return json.dumps(value)

    def decode(self, value: str) -> Any:
        return json.loads(value)
