"""A model mixin that stamps when a secret field changes, without recording the secret."""

import copy
from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

_UNKNOWN = object()


class SecretChangeStamp(models.Model):
    """Stamps ``changed_at_field`` with the time whenever ``sensitive_field`` changes.

    The history of a model never stores its secrets (they are excluded from it); the stamp,
    which is tracked, shows in the history who changed a secret and when, without the value.
    """

    sensitive_field: ClassVar[str]
    changed_at_field: ClassVar[str]

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if (update_fields is None or self.sensitive_field in update_fields) and (
            self._sensitive_changed()
        ):
            setattr(self, self.changed_at_field, timezone.now())
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, self.changed_at_field}
        super().save(*args, **kwargs)
        self._remember_sensitive()

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Any:
        instance = super().from_db(db, field_names, values)
        instance._remember_sensitive()
        return instance

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._remember_sensitive()

    def _remember_sensitive(self) -> None:
        # A copy: a dict of secrets may be changed in place.
        value = self.__dict__.get(self.sensitive_field, _UNKNOWN)
        self._stored_sensitive = value if value is _UNKNOWN else copy.deepcopy(value)

    def _sensitive_changed(self) -> bool:
        if self.sensitive_field not in self.__dict__:  # deferred, so not saved
            return False
        stored = getattr(self, "_stored_sensitive", None if self._state.adding else _UNKNOWN)
        current = self.__dict__[self.sensitive_field]
        return stored is not _UNKNOWN and bool(current or stored) and current != stored
