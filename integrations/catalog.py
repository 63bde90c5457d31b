"""Known event names per source kind, and the names seen in a workspace's traffic.

A CSM toggles and renames events from this list: the events its sources are known to send
(each registered source's ``known_events``: Purchasely's server events, Chargebee
Retention's cancel-flow events through its own webhook or a Segment source) and every name
seen so far, with its count and last-seen time.
"""

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from integrations.models import SeenEvent, Workspace
from integrations.sources import registry

#: The group of the names seen in traffic that no source is known to send.
SEEN_GROUP = "Seen in traffic"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    group: str
    description: str = ""
    count: int = 0
    last_seen_at: object = None


def known_events(kinds: Collection[str]) -> list[CatalogEntry]:
    """The events the sources of these kinds are known to send, each name once, in the
    registry's order."""
    entries: dict[str, CatalogEntry] = {}
    for source in registry.all_sources():
        if source.kind in kinds:
            for event in source.known_events:
                entries.setdefault(
                    event.name, CatalogEntry(event.name, event.group, event.description)
                )
    return list(entries.values())


def catalog(workspace: Workspace) -> list[CatalogEntry]:
    """Known events of the workspace's source kinds, then the others seen in traffic."""
    kinds = list(workspace.sources.values_list("kind", flat=True).distinct())
    seen = {row.name: row for row in workspace.seen_events.all()}
    entries = []
    for entry in known_events(kinds):
        row = seen.pop(entry.name, None)
        if row is not None:
            entry = CatalogEntry(
                entry.name, entry.group, entry.description, row.count, row.last_seen_at
            )
        entries.append(entry)
    entries += [
        CatalogEntry(row.name, SEEN_GROUP, "", row.count, row.last_seen_at)
        for row in sorted(seen.values(), key=lambda r: -r.count)
    ]
    return entries


def record_seen(workspace_id: int, counts: Counter[str]) -> None:
    """Count track event names the router has just routed, once its transaction commits.

    After the commit, so that the hot rows of popular names are locked for one statement
    rather than for the whole routing transaction. The price: a crash between the commit
    and this statement loses these counts (they inform the catalog; nothing depends on them).
    """
    if counts:
        transaction.on_commit(lambda: _add_counts(workspace_id, counts), robust=True)


def _add_counts(workspace_id: int, counts: Counter[str]) -> None:
    """One upsert for all names (PostgreSQL and SQLite alike), in name order so that
    concurrent upserts lock rows in the same order and cannot deadlock."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())  # as the ORM stores it
    names = sorted(counts)
    table = connection.ops.quote_name(SeenEvent._meta.db_table)
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(names))
    params = [value for name in names for value in (workspace_id, name, counts[name], now, now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workspace_id, name, count, first_seen_at, last_seen_at) "  # noqa: S608 (constants)
            f"VALUES {rows} ON CONFLICT (workspace_id, name) DO UPDATE SET "
            f"count = {table}.count + EXCLUDED.count, last_seen_at = EXCLUDED.last_seen_at",
            params,
        )
