"""Sample events for the event tester: one per call type and the vendors' own shapes."""

import copy
from typing import Any

from integrations.catalog import CHARGEBEE_RETENTION, PURCHASELY
from integrations.sources.purchasely import to_messages

USER = "user-123"

GENERIC: dict[str, dict[str, Any]] = {
    "identify": {
        "type": "identify",
        "userId": USER,
        "traits": {
            "email": "jane@example.com",
            "firstName": "Jane",
            "lastName": "Doe",
            "plan": "premium",
            "createdAt": "2024-01-15T10:00:00Z",
            "accountExternalId": "acme",
            "contactExternalId": "jane@example.com",
        },
    },
    "track": {
        "type": "track",
        "userId": USER,
        "event": "Order Completed",
        "properties": {"revenue": 49.9, "currency": "EUR", "quantity": 1},
    },
    "page": {"type": "page", "userId": USER, "name": "Pricing", "properties": {"path": "/p"}},
    "screen": {"type": "screen", "userId": USER, "name": "Home", "properties": {}},
    "group": {
        "type": "group",
        "userId": USER,
        "groupId": "acme",
        "traits": {"name": "Acme Inc.", "website": "https://acme.example.com", "plan": "pro"},
    },
    "alias": {"type": "alias", "previousId": "anon-42", "userId": USER},
}

PURCHASELY_EVENT = {
    "api_version": 3,
    "event_id": "sample-event",
    "event_created_at": "2024-03-01T10:00:00.000Z",
    "user_id": USER,
    "store": "APPLE_APP_STORE",
    "plan": "premium_monthly",
    "product": "premium",
    "purchase_type": "RENEWING_SUBSCRIPTION",
    "subscription_status": "AUTO_RENEWING",
    "offer_type": "FREE_TRIAL",
    "store_country": "FR",
    "customer_currency": "EUR",
    "plan_price_in_customer_currency": 9.99,
}


def chargebee_retention(name: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": USER,
        "event": name,
        "properties": {
            "app_id": "9Nyv3KZvQJ",
            "field.cancel.account.plan": "Premium",
            "field.cancel.email": "jane@example.com",
            "survey.brightback_reason": "too_expensive",
            "survey.display_reason": "Pricing - don't see value",
        },
    }


def sample_names() -> list[str]:
    purchasely = [name for names in PURCHASELY.values() for name in names]
    return [*GENERIC, *purchasely, *CHARGEBEE_RETENTION]


def sample(name: str) -> dict[str, Any] | None:
    """The sample message called ``name``, or None."""
    if name in GENERIC:
        return copy.deepcopy(GENERIC[name])
    if name in CHARGEBEE_RETENTION:
        return chargebee_retention(name)
    if any(name in names for names in PURCHASELY.values()):
        return to_messages({**PURCHASELY_EVENT, "event_name": name})[-1]
    return None
