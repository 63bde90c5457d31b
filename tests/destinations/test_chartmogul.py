"""ChartMogul: first steps by fixture, the rest of each chain through ``follow_up``.

The fixtures (tests/fixtures/chartmogul/) check what ``plan`` sends first, the lookup of the
customer. A delivery then goes on as ChartMogul answers; ``walk`` plays the engine's part
(send, then ``follow_up`` while it returns a request) against canned answers per step.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.exceptions import ValidationError

from integrations.destinations.base import OutboundRequest
from integrations.destinations.chartmogul import ChartMogul
from integrations.models import Delivery, Integration
from tests.destinations.fixtures import build
from tests.traffic import deliver_due, exchanges_of, send

API = "https://api.chartmogul.com/v1"
SETTINGS = {"mode": "rest", "api_key": "cm_test_key", "data_source_uuid": "ds_123"}
Answer = tuple[int, Any]


def case(*events: dict, mode: str = "", **extra: Any) -> dict[str, Any]:
    settings = {**SETTINGS, **({"create_company_when": mode} if mode else {})}
    integration = {"settings": settings, **extra.pop("integration", {})}
    return {"integration": integration, "events": list(events), **extra}


def walk(
    spec: dict[str, Any], answers: Mapping[str, Answer | Callable[[OutboundRequest], Answer]]
) -> list[OutboundRequest]:
    """Every request of the first delivery's chain, ChartMogul answering per step."""
    config, events, context = build("chartmogul", spec)
    plan = ChartMogul.plan(config, events, context)
    assert not plan.failures, plan.failures
    request = plan.requests[0]
    sent = [request]
    while True:
        answer = answers.get(request.step, (200, {}))
        status, body = answer(request) if callable(answer) else answer
        text = body if isinstance(body, str) else json.dumps(body)
        request = ChartMogul.follow_up(config, request, status, text)
        if request is None:
            return sent
        assert request.covers == (0,)
        sent.append(request)
        assert len(sent) < 10, "the chain does not end"


def calls(sent: list[OutboundRequest]) -> list[str]:
    return [f"{r.method} {r.url.removeprefix(API)}" for r in sent]


def body(request: OutboundRequest) -> Any:
    return json.loads(request.body)


def customers(*entries: dict) -> Answer:
    return 200, {"entries": list(entries), "has_more": False, "cursor": None}


def attribute(kind: str, key: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "key": key, "value": value, "source": "Segment"}


GROUP = {
    "type": "group",
    "userId": "u1",
    "groupId": "acme",
    "messageId": "m1",
    "traits": {
        "name": "Acme",
        "email": "billing@acme.example",
        "website": "https://acme.example",
        "plan": "enterprise",
        "employees": 120,
        "createdAt": "2023-05-01T10:00:00Z",
        "address": {"city": "New York", "state": "NY", "country": "US", "postal_code": "10001"},
    },
}
ACME_FIELDS = {
    "name": "Acme",
    "email": "billing@acme.example",
    "website_url": "https://acme.example",
    "city": "New York",
    "state": "NY",
    "country": "US",
    "zip": "10001",
}
ACME_CUSTOM = [
    attribute("String", "plan", "enterprise"),
    attribute("Integer", "employees", 120),
    attribute("Timestamp", "createdAt", "2023-05-01T10:00:00Z"),
]
ADA = {"u1": {"traits": {"email": "ada@acme.example", "name": "Ada Lovelace", "title": "CTO"}}}


# -- group ------------------------------------------------------------------------------


def test_group_for_a_new_company_creates_the_customer_then_the_users_contact():
    sent = walk(
        case(GROUP, profiles=ADA),
        {
            "find_customer": customers(),
            "create_customer": (201, {"uuid": "cus_1", "external_id": "acme"}),
        },
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
        "POST /customers",
        "POST /contacts",
    ]
    assert [r.step for r in sent] == ["find_customer", "create_customer", "create_contact"]
    assert body(sent[1]) == {
        "data_source_uuid": "ds_123",
        "external_id": "acme",
        **ACME_FIELDS,
        "attributes": {"custom": ACME_CUSTOM},
    }
    assert sent[1].headers["Content-Type"] == "application/json"
    # A new customer has no contact yet: the user's is created without a lookup.
    assert body(sent[2]) == {
        "customer_uuid": "cus_1",
        "data_source_uuid": "ds_123",
        "external_id": "u1",
        "email": "ada@acme.example",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "title": "CTO",
    }


def test_group_for_a_known_company_patches_fields_adds_attributes_updates_the_contact():
    contacts = {"entries": [{"uuid": "con_9", "external_id": "u1", "email": "old@acme.example"}]}
    sent = walk(
        case(GROUP, profiles=ADA),
        {
            "find_customer": customers({"uuid": "cus_1", "external_id": "acme"}),
            "find_contact": (200, contacts),
        },
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
        "PATCH /customers/cus_1",
        "POST /customers/cus_1/attributes/custom",
        "GET /customers/cus_1/contacts?per_page=200",
        "PATCH /contacts/con_9",
    ]
    assert body(sent[1]) == ACME_FIELDS
    assert body(sent[2]) == {"custom": ACME_CUSTOM}
    assert sent[3].body == ""
    assert "Content-Type" not in sent[3].headers
    assert body(sent[4]) == {
        "external_id": "u1",
        "email": "ada@acme.example",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "title": "CTO",
    }


def test_group_merges_known_group_traits_and_skips_steps_with_nothing_to_write():
    group = {"type": "group", "groupId": "acme", "anonymousId": "a1", "messageId": "m1"}
    sent = walk(
        case(group, groups={"acme": {"name": "Acme"}}),
        {"find_customer": customers({"uuid": "cus_1", "external_id": "acme"})},
    )
    # No custom attribute, no user: only the name is written.
    assert calls(sent)[1:] == ["PATCH /customers/cus_1"]
    assert body(sent[1]) == {"name": "Acme"}


def test_group_in_user_created_mode_writes_no_contact():
    sent = walk(case(GROUP, mode="user_created", profiles=ADA), {"find_customer": customers()})
    assert calls(sent)[1:] == ["POST /customers"]


def test_a_customer_of_another_external_id_is_not_taken_for_this_one():
    sent = walk(
        case(GROUP),
        {
            "find_customer": customers({"uuid": "cus_2", "external_id": "acme-old"}),
            "create_customer": (201, {"uuid": "cus_1"}),
        },
    )
    assert calls(sent)[1] == "POST /customers"


def test_a_merged_customer_is_found_by_any_of_its_external_ids():
    merged = {
        "uuid": "cus_1",
        "external_id": "acme-billing",
        "external_ids": ["acme-billing", "acme"],
    }
    sent = walk(case(GROUP), {"find_customer": customers(merged)})
    assert calls(sent)[1] == "PATCH /customers/cus_1"


def test_country_and_state_that_are_not_iso_codes_become_custom_attributes():
    group = {
        **GROUP,
        "traits": {"name": "Acme", "address": {"country": "United States", "state": "New York"}},
    }
    sent = walk(case(group), {"find_customer": customers()})
    assert body(sent[1]) == {
        "data_source_uuid": "ds_123",
        "external_id": "acme",
        "name": "Acme",
        "attributes": {
            "custom": [
                attribute("String", "country", "United States"),
                attribute("String", "state", "New York"),
            ]
        },
    }


def test_a_group_without_a_name_is_created_with_its_id_as_name():
    group = {"type": "group", "groupId": "g-42", "userId": "u1", "messageId": "m1"}
    sent = walk(case(group), {"find_customer": customers()})
    assert body(sent[1]) == {"data_source_uuid": "ds_123", "external_id": "g-42", "name": "g-42"}


# -- identify ---------------------------------------------------------------------------

IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "messageId": "m2",
    "context": {"groupId": "acme"},
    "traits": {
        "email": "ada@acme.example",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "title": "CTO",
        "phone": "+44 20 1234",
        "linkedIn": "https://linkedin.com/in/ada",
        "plan": "pro",
    },
}
ADA_CONTACT = {
    "external_id": "u1",
    "email": "ada@acme.example",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "title": "CTO",
    "phone": "+44 20 1234",
    "linked_in": "https://linkedin.com/in/ada",
}


def test_identify_adds_the_contact_to_the_users_company_without_touching_the_company():
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": customers({"uuid": "cus_1", "external_id": "acme"}),
            "find_contact": (200, {"entries": [{"uuid": "con_1", "email": "bo@acme.example"}]}),
        },
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
        "GET /customers/cus_1/contacts?per_page=200",
        "POST /contacts",
    ]
    assert body(sent[2]) == {"customer_uuid": "cus_1", "data_source_uuid": "ds_123", **ADA_CONTACT}


def test_identify_before_chartmogul_has_the_company_creates_it_from_its_group_traits():
    sent = walk(
        case(IDENTIFY, groups={"acme": {"name": "Acme", "seats": 10}}),
        {"find_customer": customers(), "create_customer": (201, {"uuid": "cus_1"})},
    )
    assert calls(sent)[1:] == ["POST /customers", "POST /contacts"]
    assert body(sent[1]) == {
        "data_source_uuid": "ds_123",
        "external_id": "acme",
        "name": "Acme",
        "attributes": {"custom": [attribute("Integer", "seats", 10)]},
    }
    assert body(sent[2])["customer_uuid"] == "cus_1"


def test_identify_takes_the_company_from_the_profile_store():
    identify = {"type": "identify", "userId": "u1", "messageId": "m2", "traits": {"title": "CEO"}}
    spec = case(
        identify, profiles={"u1": {"traits": {"email": "ada@acme.example"}, "group_id": "g"}}
    )
    sent = walk(spec, {"find_customer": customers(), "create_customer": (201, {"uuid": "cus_1"})})
    assert sent[0].url.endswith("external_id=g")
    assert body(sent[2]) == {
        "customer_uuid": "cus_1",
        "data_source_uuid": "ds_123",
        "external_id": "u1",
        "email": "ada@acme.example",
        "title": "CEO",
    }


def test_identify_matches_a_contact_without_external_id_by_email_and_claims_it():
    contacts = {
        "entries": [
            {"uuid": "con_other", "external_id": "u7", "email": "ada@acme.example"},
            {"uuid": "con_1", "external_id": None, "email": "ADA@acme.example"},
        ]
    }
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": customers({"uuid": "cus_1", "external_id": "acme"}),
            "find_contact": (200, contacts),
        },
    )
    assert calls(sent)[-1] == "PATCH /contacts/con_1"
    assert body(sent[-1]) == ADA_CONTACT


def test_identify_does_not_take_another_users_contact_with_the_same_email():
    contacts = {
        "entries": [{"uuid": "con_other", "external_id": "u7", "email": "ada@acme.example"}]
    }
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": customers({"uuid": "cus_1", "external_id": "acme"}),
            "find_contact": (200, contacts),
        },
    )
    assert calls(sent)[-1] == "POST /contacts"


def test_identify_in_user_created_mode_makes_the_user_a_customer_and_a_contact():
    identify = {**IDENTIFY, "traits": {**IDENTIFY["traits"], "company": {"name": "Acme"}}}
    sent = walk(
        case(identify, mode="user_created"),
        {"find_customer": customers(), "create_customer": (201, {"uuid": "cus_u1"})},
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=u1",
        "POST /customers",
        "POST /contacts",
    ]
    # Contact fields go to the contact; the rest of the traits are custom attributes.
    assert body(sent[1]) == {
        "data_source_uuid": "ds_123",
        "external_id": "u1",
        "name": "Ada Lovelace",
        "email": "ada@acme.example",
        "company": "Acme",
        "attributes": {"custom": [attribute("String", "plan", "pro")]},
    }
    assert body(sent[2]) == {"customer_uuid": "cus_u1", "data_source_uuid": "ds_123", **ADA_CONTACT}


def test_identify_in_user_created_mode_updates_a_known_user():
    sent = walk(
        case(IDENTIFY, mode="user_created"),
        {
            "find_customer": customers({"uuid": "cus_u1", "external_id": "u1"}),
            "find_contact": (200, {"entries": [{"uuid": "con_1", "external_id": "u1"}]}),
        },
    )
    assert calls(sent)[1:] == [
        "PATCH /customers/cus_u1",
        "POST /customers/cus_u1/attributes/custom",
        "GET /customers/cus_u1/contacts?per_page=200",
        "PATCH /contacts/con_1",
    ]
    assert body(sent[1]) == {"email": "ada@acme.example"}
    assert body(sent[2]) == {"custom": [attribute("String", "plan", "pro")]}


def test_identify_of_an_anonymous_user_of_a_company_needs_an_email():
    spec = case(
        {"type": "identify", "anonymousId": "a1", "messageId": "m1", "context": {"groupId": "acme"}}
    )
    config, events, context = build("chartmogul", spec)
    plan = ChartMogul.plan(config, events, context)
    assert "matched by user id or email" in plan.failures[0]


# -- track ------------------------------------------------------------------------------


def test_track_properties_become_typed_custom_attributes_of_the_company():
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Plan Changed",
        "messageId": "m3",
        "properties": {
            "trial": True,
            "seats": 12,
            "mrr": 99.5,
            "renews_on": "2024-06-01",
            "changed_at": "2024-01-01T11:59:00Z",
            "not a date": "2024-13-45T99:00",
            "plan name": "pro",
            "long": "x" * 300,
            "tags": ["a", "b"],
            "blob": {"text": "y" * 300},
            "nothing": None,
            "internal_note": "secret",
            "plan": "pro",
            "ünï": 1,
        },
    }
    rules = {
        "property_rules": [
            {"name": "internal_note", "enabled": False},
            {"name": "plan", "enabled": True, "send_as": "Plan Tier"},
        ]
    }
    spec = case(track, integration=rules, profiles={"u1": {"group_id": "acme"}})
    sent = walk(spec, {"find_customer": customers({"uuid": "cus_1", "external_id": "acme"})})
    assert calls(sent)[1:] == ["POST /customers/cus_1/attributes/custom"]
    assert body(sent[1]) == {
        "custom": [
            attribute("Boolean", "trial", True),
            attribute("Integer", "seats", 12),
            attribute("Decimal", "mrr", 99.5),
            attribute("Timestamp", "renews_on", "2024-06-01"),
            attribute("Timestamp", "changed_at", "2024-01-01T11:59:00Z"),
            attribute("String", "not_a_date", "2024-13-45T99:00"),
            attribute("String", "plan_name", "pro"),
            attribute("String", "long", "x" * 255),
            attribute("String", "tags", '["a","b"]'),
            attribute("String", "Plan_Tier", "pro"),
            attribute("Integer", "uni", 1),
        ]
    }


def test_track_for_a_company_chartmogul_lacks_creates_it_with_the_attributes():
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Seat Added",
        "messageId": "m3",
        "context": {"groupId": "acme"},
        "properties": {"seats": 3},
    }
    spec = case(track, groups={"acme": {"name": "Acme", "seats": 2, "plan": "pro"}})
    sent = walk(spec, {"find_customer": customers()})
    assert calls(sent)[1:] == ["POST /customers"]
    # The event's value wins over the older group trait.
    assert body(sent[1])["attributes"] == {
        "custom": [attribute("Integer", "seats", 3), attribute("String", "plan", "pro")]
    }


def test_track_with_contact_details_in_context_traits_updates_the_contact():
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Profile Updated",
        "messageId": "m3",
        "context": {"groupId": "acme", "traits": {"email": "ada@acme.example", "title": "CEO"}},
        "properties": {"source": "settings"},
    }
    sent = walk(
        case(track),
        {
            "find_customer": customers({"uuid": "cus_1", "external_id": "acme"}),
            "find_contact": (200, {"entries": [{"uuid": "con_1", "external_id": "u1"}]}),
        },
    )
    assert calls(sent)[1:] == [
        "POST /customers/cus_1/attributes/custom",
        "GET /customers/cus_1/contacts?per_page=200",
        "PATCH /contacts/con_1",
    ]
    assert body(sent[-1]) == {"external_id": "u1", "email": "ada@acme.example", "title": "CEO"}


def test_track_in_user_created_mode_writes_to_the_users_own_customer():
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Seat Added",
        "messageId": "m3",
        "properties": {"seats": 3},
    }
    profiles = {"u1": {"traits": {"name": "Ada Lovelace", "title": "CTO"}, "group_id": "acme"}}
    sent = walk(case(track, mode="user_created", profiles=profiles), {"find_customer": customers()})
    assert sent[0].url.endswith("external_id=u1")
    assert body(sent[1]) == {
        "data_source_uuid": "ds_123",
        "external_id": "u1",
        "name": "Ada Lovelace",
        "attributes": {"custom": [attribute("Integer", "seats", 3)]},
    }


# -- unusual answers --------------------------------------------------------------------


def test_a_lookup_answer_that_is_not_a_list_counts_as_not_found():
    sent = walk(case(GROUP), {"find_customer": (200, "<html>ok</html>")})
    assert calls(sent)[1] == "POST /customers"


def test_a_creation_answer_without_uuid_is_followed_by_one_more_lookup():
    lookups = iter([customers(), customers({"uuid": "cus_1", "external_id": "acme"})])
    sent = walk(
        case(GROUP, profiles=ADA),
        {
            "find_customer": lambda request: next(lookups),
            "create_customer": (201, ""),
            "find_contact": (200, {"entries": []}),
        },
    )
    assert calls(sent)[1:3] == [
        "POST /customers",
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
    ]
    assert calls(sent)[-1] == "POST /contacts"


def test_a_customer_created_but_never_found_ends_the_chain():
    sent = walk(
        case(GROUP, profiles=ADA),
        {"find_customer": customers(), "create_customer": (201, "")},
    )
    assert calls(sent)[1:] == [
        "POST /customers",
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
    ]


def test_unknown_steps_end_the_chain():
    config, _, _ = build("chartmogul", case(GROUP))
    request = OutboundRequest("GET", API, step="something else")
    assert ChartMogul.follow_up(config, request, 200, "{}") is None


def test_a_batch_of_several_keeps_each_delivery_in_its_own_request():
    identify = {**IDENTIFY, "messageId": "m9"}
    spec = case(GROUP, {"type": "page", "userId": "u1", "messageId": "mp"}, identify)
    config, events, context = build("chartmogul", spec)
    plan = ChartMogul.plan(config, events, context)
    assert [r.covers for r in plan.requests] == [(0,), (2,)]
    assert "identify, group and track calls" in plan.failures[1]
    assert ChartMogul.max_batch_size == 1


# -- settings ---------------------------------------------------------------------------


def test_data_source_uuid_must_be_a_chartmogul_one():
    with pytest.raises(ValidationError) as error:
        ChartMogul.clean_settings({"mode": "rest", "api_key": "k", "data_source_uuid": "1234"})
    assert "ds_" in str(error.value)


def test_rest_mode_creates_a_company_when_a_user_is_added_to_it_by_default():
    cleaned = ChartMogul.clean_settings(
        {"mode": "rest", "api_key": "k", "data_source_uuid": "ds_1"}
    )
    assert cleaned.public["create_company_when"] == "user_added_to_company"
    assert cleaned.secrets == {"api_key": "k"}


def test_api_base_url_ending_in_v1_is_used_as_is():
    spec = case(GROUP, integration={"api_base_url": "https://proxy.example.com/v1"})
    config, events, context = build("chartmogul", spec)
    plan = ChartMogul.plan(config, events, context)
    assert plan.requests[0].url.startswith("https://proxy.example.com/v1/customers?")


# -- through the engine -----------------------------------------------------------------


@pytest.fixture
def chartmogul(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="ChartMogul", kind="chartmogul")
    integration.set_settings(
        {"mode": "rest", "api_key": "cm_live_secret", "data_source_uuid": "ds_123"}
    )
    integration.save()
    return integration


@responses.activate
def test_engine_runs_the_whole_chain_and_logs_the_steps(source, chartmogul):
    responses.get(f"{API}/customers", json={"entries": [], "has_more": False})
    responses.post(f"{API}/customers", status=201, json={"uuid": "cus_1"})
    responses.post(f"{API}/contacts", status=201, json={"uuid": "con_1"})
    send(source, **{**GROUP, "userId": None, "anonymousId": "a1"})
    deliver_due()
    delivery = Delivery.objects.get(integration=chartmogul)
    assert delivery.status == Delivery.Status.DELIVERED
    # Every exchange of the chain is stored in full, in order, redacted.
    lookup, write = exchanges_of(delivery)
    assert (lookup["method"], lookup["url"].split("?")[0]) == ("GET", f"{API}/customers")
    assert lookup["status"] == 200 and "entries" in lookup["response_body"]
    assert (write["method"], write["url"]) == ("POST", f"{API}/customers")
    assert json.loads(write["request_body"])["external_id"] == "acme"
    assert {e["request_headers"]["Authorization"] for e in (lookup, write)} == {"[REDACTED]"}
    assert len(responses.calls) == 2


@responses.activate
def test_engine_retries_a_chain_chartmogul_rate_limits(source, chartmogul):
    responses.get(f"{API}/customers", json={"entries": [{"uuid": "cus_1", "external_id": "acme"}]})
    responses.patch(
        f"{API}/customers/cus_1",
        status=429,
        json={"code": 429, "message": "Your request rate has exceeded our rate limit."},
        headers={"Retry-After": "30"},
    )
    send(source, **{**GROUP, "userId": None, "anonymousId": "a1"})
    deliver_due()
    delivery = Delivery.objects.get(integration=chartmogul)
    assert delivery.status == Delivery.Status.RETRYING
    assert "HTTP 429" in delivery.last_error
    assert [e["status"] for e in exchanges_of(delivery)] == [200, 429]


def test_track_of_an_anonymous_user_without_email_writes_no_contact():
    track = {
        "type": "track",
        "anonymousId": "a1",
        "event": "Seat Added",
        "messageId": "m3",
        "context": {"groupId": "acme", "traits": {"title": "CEO"}},
        "properties": {"seats": 3},
    }
    sent = walk(case(track), {"find_customer": customers({"uuid": "cus_1", "external_id": "acme"})})
    assert calls(sent)[1:] == ["POST /customers/cus_1/attributes/custom"]


# -- REST: contacts beyond one page, attributes the customer already has ----------------


def pages(*answers: dict) -> Callable[[OutboundRequest], Answer]:
    """Contact pages by cursor: the first without one, then each under its own."""
    by_cursor = {answer.get("cursor_in", ""): answer for answer in answers}

    def answer(request: OutboundRequest) -> Answer:
        cursor = parse_qs(urlsplit(request.url).query).get("cursor", [""])[0]
        page = dict(by_cursor[cursor])
        page.pop("cursor_in", None)
        return 200, page

    return answer


KNOWN_ACME = customers({"uuid": "cus_1", "external_id": "acme"})


def test_the_users_contact_beyond_the_first_page_is_found_by_following_the_cursor():
    others = [{"uuid": f"con_{n}", "external_id": f"u{n}0"} for n in range(3)]
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": KNOWN_ACME,
            "find_contact": pages(
                {"entries": others, "has_more": True, "cursor": "c2"},
                {"cursor_in": "c2", "entries": [{"uuid": "con_u1", "external_id": "u1"}]},
            ),
        },
    )
    assert calls(sent)[1:] == [
        "GET /customers/cus_1/contacts?per_page=200",
        "GET /customers/cus_1/contacts?per_page=200&cursor=c2",
        "PATCH /contacts/con_u1",
    ]


def test_a_later_page_with_the_users_external_id_wins_over_an_earlier_email_match():
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": KNOWN_ACME,
            "find_contact": pages(
                {
                    "entries": [{"uuid": "con_mail", "email": "ada@acme.example"}],
                    "has_more": True,
                    "cursor": "c2",
                },
                {"cursor_in": "c2", "entries": [{"uuid": "con_u1", "external_id": "u1"}]},
            ),
        },
    )
    assert calls(sent)[-1] == "PATCH /contacts/con_u1"


def test_the_email_match_of_any_page_is_taken_when_no_page_has_the_external_id():
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": KNOWN_ACME,
            "find_contact": pages(
                {
                    "entries": [{"uuid": "con_mail", "email": "ada@acme.example"}],
                    "has_more": True,
                    "cursor": "c2",
                },
                {"cursor_in": "c2", "entries": [], "has_more": False, "cursor": None},
            ),
        },
    )
    assert calls(sent)[-2:] == [
        "GET /customers/cus_1/contacts?per_page=200&cursor=c2",
        "PATCH /contacts/con_mail",
    ]


def test_a_cursor_that_does_not_move_ends_the_paging():
    sent = walk(
        case(IDENTIFY),
        {
            "find_customer": KNOWN_ACME,
            "find_contact": pages(
                {"entries": [], "has_more": True, "cursor": "c2"},
                {"cursor_in": "c2", "entries": [], "has_more": True, "cursor": "c2"},
            ),
        },
    )
    assert calls(sent)[-1] == "POST /contacts"
    assert len(sent) == 4


def test_attributes_the_customer_has_are_updated_with_put_new_ones_added_with_post():
    known = {
        "uuid": "cus_1",
        "external_id": "acme",
        "attributes": {"tags": [], "custom": {"plan": "basic", "seats": 5}},
    }
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Plan Changed",
        "messageId": "m1",
        "context": {"groupId": "acme"},
        "properties": {"plan": "enterprise", "seats": 50, "region": "EU"},
    }
    sent = walk(case(track), {"find_customer": customers(known)})
    assert calls(sent)[1:] == [
        "POST /customers/cus_1/attributes/custom",
        "PUT /customers/cus_1/attributes/custom",
    ]
    assert body(sent[1]) == {"custom": [attribute("String", "region", "EU")]}
    assert body(sent[2]) == {"custom": {"plan": "enterprise", "seats": 50}}


def test_only_existing_attributes_go_by_put_alone():
    known = {"uuid": "cus_1", "external_id": "acme", "attributes": {"custom": {"seats": 5}}}
    track = {
        "type": "track",
        "userId": "u1",
        "event": "Seats",
        "messageId": "m1",
        "context": {"groupId": "acme"},
        "properties": {"seats": 6},
    }
    sent = walk(case(track), {"find_customer": customers(known)})
    assert calls(sent)[1:] == ["PUT /customers/cus_1/attributes/custom"]


# -- modes, settings and test connection -----------------------------------------------

HOOK = "https://segment.chartmogul.example/hooks/abc123"


def test_new_integrations_send_through_chartmoguls_segment_source():
    cleaned = ChartMogul.clean_settings({"webhook_url": HOOK})
    assert cleaned.public["mode"] == "webhook"
    assert cleaned.secrets == {"webhook_url": HOOK}
    with pytest.raises(ValidationError) as error:
        ChartMogul.clean_settings({"api_key": "k", "data_source_uuid": "ds_1"})
    assert set(error.value.message_dict) == {"webhook_url"}


def test_rest_mode_needs_its_own_settings_only():
    with pytest.raises(ValidationError) as error:
        ChartMogul.clean_settings({"mode": "rest"})
    assert set(error.value.message_dict) == {"api_key", "data_source_uuid"}
    kept = ChartMogul.clean_settings(
        {"mode": "rest", "data_source_uuid": "ds_1"}, existing_secrets={"api_key": "k"}
    )
    assert kept.secrets == {"api_key": "k"}


def test_errors_of_both_kinds_are_reported_together():
    with pytest.raises(ValidationError) as error:
        ChartMogul.clean_settings({"mode": "rest", "data_source_uuid": "x", "nope": 1})
    assert set(error.value.message_dict) == {"api_key", "data_source_uuid", "nope"}


def test_the_webhook_url_must_be_https_unless_private_urls_are_allowed(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ValidationError) as error:
        ChartMogul.clean_settings({"webhook_url": "http://segment.chartmogul.example/h"})
    assert "https://" in str(error.value)
    with pytest.raises(ValidationError):
        ChartMogul.clean_settings({"webhook_url": "not a url"})
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = True
    cleaned = ChartMogul.clean_settings({"webhook_url": "http://127.0.0.1:9/hook/"})
    assert cleaned.secrets["webhook_url"] == "http://127.0.0.1:9/hook/"


def test_connection_tests():
    webhook, _, _ = build(
        "chartmogul", {"integration": {"settings": {"webhook_url": HOOK}}, "events": []}
    )
    ping = ChartMogul.connection_test(webhook)
    assert (ping.method, ping.url, ping.body) == ("POST", HOOK, "{}")
    assert ping.headers["Content-Type"] == "application/json"
    rest, _, _ = build("chartmogul", case())
    ping = ChartMogul.connection_test(rest)
    assert (ping.method, ping.url, ping.body) == ("GET", f"{API}/ping", "")
    assert ping.headers["Authorization"] == "Basic Y21fdGVzdF9rZXk6"


def test_the_webhook_mode_takes_no_track_calls_and_no_throttle(workspace):
    from integrations.delivery.routing import Routable, Router

    webhook = Integration(workspace=workspace, name="CM hook", kind="chartmogul")
    webhook.set_settings({"webhook_url": "https://segment.chartmogul.example/hooks/t"})
    webhook.save()
    rest = Integration(workspace=workspace, name="CM rest", kind="chartmogul")
    rest.set_settings({"mode": "rest", "api_key": "k", "data_source_uuid": "ds_1"})
    rest.save()
    router = Router([webhook, rest])
    assert router.destinations(Routable("track", "Seat Added")) == [rest]
    assert router.destinations(Routable("identify", "identify")) == [webhook, rest]
    assert ChartMogul.rate_limit(webhook.settings) is None
    assert ChartMogul.rate_limit(rest.settings) == 40
