"""Per-process caches of the configuration every ingest request reads.

A web process keeps the source of a write key and the routing of a workspace (its enabled
integrations and their event rules) for ``INGEST_CONFIG_CACHE_SECONDS``: two queries fewer
per request. A change saved in a process clears that process's caches at once, and again
when its transaction commits; other processes see it once their entry expires, so within
``INGEST_CONFIG_CACHE_SECONDS``. ``0`` turns the caches off (the test suite does).
"""

import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Beyond this many entries a cache starts afresh (entries are per source or workspace).
MAX_ENTRIES = 10_000


class ConfigCache(Generic[K, V]):
    """Values by key for a few seconds; ``None`` (nothing found) is never kept, so that a
    new source is found at once and unknown write keys cannot fill the memory."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0

    def get(self, key: K, load: Callable[[], V]) -> V:
        ttl = settings.INGEST_CONFIG_CACHE_SECONDS
        if ttl <= 0:
            return load()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        value = load()
        # A clear() while loading (another thread saved a change) makes the value suspect.
        if value is not None and generation == self._generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + ttl, value)
        return value

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def clear_on_change(self, *models: type[Model]) -> None:
        """Clear this cache whenever one of ``models`` is saved or deleted in this process."""

        def changed(**kwargs: Any) -> None:
            self.clear()
            # Also after commit: a request of another thread may have cached the old rows
            # between the change and the end of its transaction.
            transaction.on_commit(self.clear, using=kwargs.get("using"))

        for model in models:
            for signal in (post_save, post_delete):
                signal.connect(
                    changed,
                    sender=model,
                    weak=False,
                    dispatch_uid=f"config_cache:{self.name}:{model._meta.label}:{id(signal)}",
                )
