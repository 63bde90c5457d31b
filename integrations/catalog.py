"""Known event names per source kind, and the names seen in a workspace's traffic.

A CSM toggles and renames events from this list: the events its sources are known to send
(Purchasely's server events, Chargebee Retention's cancel-flow events through a Segment
source) and every name seen so far, with its count and last-seen time.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from integrations.models import SeenEvent, Source, Workspace

PURCHASELY = {
    "Entitlement": ("ACTIVATE", "DEACTIVATE"),
    "Transaction": ("TRANSACTION_PROCESSED",),
    "Lifecycle": (
        "SUBSCRIPTION_STARTED",
        "RENEWAL_DISABLED",
        "RENEWAL_ENABLED",
        "SUBSCRIPTION_TERMINATED",
        "FAMILY_SHARED_REVOKED",
        "GRACE_PERIOD_STARTED",
        "GRACE_PERIOD_TERMINATED",
        "SUBSCRIPTION_CANCELLED_DURING_GRACE_PERIOD",
        "SUBSCRIPTION_RECOVERED_FROM_GRACE_PERIOD",
        "ENTERED_BILLING_RETRY",
        "SUBSCRIPTION_RECOVERED_FROM_BILLING_RETRY",
        "SUBSCRIPTION_RENEWED",
        "SUBSCRIPTION_DEFERRED",
        "SUBSCRIPTION_REACTIVATED",
        "SUBSCRIPTION_CROSSGRADED",
        "SUBSCRIPTION_DOWNGRADED",
        "SUBSCRIPTION_UPGRADED",
        "SUBSCRIPTION_REFUNDED_REVOKED",
        "SUBSCRIPTION_TRANSFERRED",
        "SUBSCRIPTION_RECEIVED",
        "ONE_TIME_PURCHASE_TRANSFERRED",
        "ONE_TIME_PURCHASE_RECEIVED",
        "SUBSCRIPTION_WILL_PAUSE",
        "SUBSCRIPTION_PAUSED",
        "SUBSCRIPTION_UNPAUSED",
        "SUBSCRIPTION_CANCELLED_DURING_PAUSE",
        "SUBSCRIPTION_WILL_NOT_PAUSE",
    ),
    "Offer": (
        "TRIAL_STARTED",
        "INTRO_OFFER_STARTED",
        "PROMO_CODE_STARTED",
        "TRIAL_CONVERTED",
        "INTRO_OFFER_CONVERTED",
        "PROMO_CODE_CONVERTED",
        "TRIAL_NOT_CONVERTED",
        "INTRO_OFFER_NOT_CONVERTED",
        "PROMO_CODE_NOT_CONVERTED",
        "PROMOTIONAL_OFFER_STARTED",
        "PROMOTIONAL_OFFER_CONVERTED",
        "PROMOTIONAL_OFFER_NOT_CONVERTED",
    ),
}

#: The group of the names seen in traffic that no source is known to send.
SEEN_GROUP = "Seen in traffic"

CHARGEBEE_RETENTION = {
    "page_loaded": "The user visited a cancel page",
    "watchlist": "The user visited and did not cancel within 30 minutes",
    "cancel": "The user confirmed the cancel request",
    "save": "The watch-list session expired and the user did not cancel",
    "deflect": "The user took any action that leaves the cancel flow",
    "email": "The user sent the feedback form",
    "link": "The user clicked a link (modal actions and 'Nevermind' included)",
    "chat": "The user asked for a chat",
    "accept_offer": "The user accepted an offer",
    "schedule": "The user asked for a call to be scheduled",
}


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    group: str
    description: str = ""
    count: int = 0
    last_seen_at: object = None


def known_events(kinds: Sequence[str]) -> list[CatalogEntry]:
    entries = []
    if Source.Kind.PURCHASELY in kinds:
        entries += [
            CatalogEntry(name, f"Purchasely: {group}")
            for group, names in PURCHASELY.items()
            for name in names
        ]
    if Source.Kind.SEGMENT in kinds:
        entries += [
            CatalogEntry(name, "Chargebee Retention", description)
            for name, description in CHARGEBEE_RETENTION.items()
        ]
    return entries


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
