"""ChartMogul REST mode: a deletion's chain (find the customer, find the user's contact on
its pages, delete it), played against canned answers as ``test_chartmogul`` does."""

from tests.destinations.test_chartmogul import (
    KNOWN_ACME,
    calls,
    case,
    customers,
    pages,
    walk,
)

DELETE = {"type": "delete", "userId": "u1", "messageId": "d1"}
PROFILES = {"u1": {"traits": {"email": "ada@acme.example"}, "group_id": "acme"}}


def deletion(mode: str = "", **message) -> dict:
    return case({**DELETE, **message}, mode=mode, profiles=PROFILES)


def test_the_users_contact_is_found_by_external_id_and_deleted():
    sent = walk(
        deletion(),
        {
            "erase_find_customer": KNOWN_ACME,
            "erase_find_contact": customers(
                {"uuid": "con_other", "external_id": "u9", "email": "ada@acme.example"},
                {"uuid": "con_u1", "external_id": "u1"},
            ),
        },
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=acme",
        "GET /customers/cus_1/contacts?per_page=200",
        "DELETE /contacts/con_u1",
    ]
    assert sent[-1].body == ""


def test_a_contact_without_external_id_is_found_by_the_profiles_email_on_a_later_page():
    sent = walk(
        deletion(type="suppress"),
        {
            "erase_find_customer": KNOWN_ACME,
            "erase_find_contact": pages(
                {
                    "entries": [{"uuid": "con_x", "external_id": "u9"}],
                    "has_more": True,
                    "cursor": "c2",
                },
                {"cursor_in": "c2", "entries": [{"uuid": "con_mail", "email": "ADA@acme.example"}]},
            ),
        },
    )
    assert calls(sent)[1:] == [
        "GET /customers/cus_1/contacts?per_page=200",
        "GET /customers/cus_1/contacts?per_page=200&cursor=c2",
        "DELETE /contacts/con_mail",
    ]


def test_another_users_contact_with_the_same_email_is_left_alone():
    sent = walk(
        deletion(),
        {
            "erase_find_customer": KNOWN_ACME,
            "erase_find_contact": customers(
                {"uuid": "con_other", "external_id": "u9", "email": "ada@acme.example"}
            ),
        },
    )
    assert calls(sent)[-1] == "GET /customers/cus_1/contacts?per_page=200"


def test_no_customer_means_nothing_to_delete_and_nothing_is_created():
    sent = walk(deletion(), {"erase_find_customer": customers()})
    assert calls(sent) == ["GET /customers?data_source_uuid=ds_123&external_id=acme"]


def test_in_user_created_mode_the_customer_is_the_user_and_is_kept():
    sent = walk(
        deletion(mode="user_created"),
        {
            "erase_find_customer": customers({"uuid": "cus_u1", "external_id": "u1"}),
            "erase_find_contact": customers({"uuid": "con_u1", "external_id": "u1"}),
        },
    )
    assert calls(sent) == [
        "GET /customers?data_source_uuid=ds_123&external_id=u1",
        "GET /customers/cus_u1/contacts?per_page=200",
        "DELETE /contacts/con_u1",
    ]
