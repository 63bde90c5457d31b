"""Slack: settings (a secret https webhook URL, a default message), what templates read
and how values are written, the connection test, and a message through the engine."""

import json

import pytest
import responses
from django.core.exceptions import ValidationError

from integrations.delivery import planning
from integrations.delivery.connection_test import ConnectionStatus, check_connection
from integrations.delivery.redact import REDACTED
from integrations.destinations.context import PlanContext, Profile
from integrations.destinations.mapping import MAX_RENDERED
from integrations.destinations.slack import MAX_TEXT, TEST_MESSAGE, Slack, slack_text
from integrations.destinations.values import EventData
from integrations.models import Delivery, Exchange, Integration
from tests.destinations.fixtures import RECEIVED_AT, cases, check_case
from tests.traffic import deliver_due, send

HOOK = "https://hooks.slack.com/services/T0001/B0001/s3cr3tT0k3n"


@pytest.mark.parametrize("path", cases("slack"))
def test_fixture(path):
    check_case("slack", path)


def integration_of(mappings=None, **settings) -> Integration:
    integration = Integration(kind="slack", name="Churn alerts")
    integration.set_settings({"webhook_url": HOOK, **settings})
    integration.set_field_mappings(mappings or {})
    return integration


def track(**properties) -> EventData:
    payload = {"type": "track", "event": "cancel", "userId": "u1", "properties": properties}
    return EventData("m1", "track", RECEIVED_AT, payload, event="cancel", user_id="u1")


def text_of(integration: Integration, event: EventData, context=None) -> str:
    config = planning.integration_config(integration)
    (request,) = Slack.plan(config, [event], context or PlanContext()).requests
    return json.loads(request.body)["text"]


# --- settings ------------------------------------------------------------------------


def test_the_webhook_url_is_a_secret_setting():
    integration = integration_of(default_template="{{ event }}")
    assert integration.settings == {"default_template": "{{ event }}"}
    assert integration.secret_settings == {"webhook_url": HOOK}


def test_the_webhook_url_must_be_https_unless_private_urls_are_allowed(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ValidationError) as caught:
        Slack.clean_settings({"webhook_url": "http://hooks.slack.com/services/T/B/x"})
    assert "https://" in caught.value.message_dict["webhook_url"][0]
    with pytest.raises(ValidationError) as caught:
        Slack.clean_settings({})
    assert "required" in caught.value.message_dict["webhook_url"][0]
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = True
    assert Slack.clean_settings({"webhook_url": "http://127.0.0.1:9000/slack"}).secrets


def test_a_default_message_that_is_no_template_is_refused_when_saved():
    with pytest.raises(ValidationError) as caught:
        Slack.clean_settings({"webhook_url": HOOK, "default_template": "{{ traits..x }}"})
    assert "expected a key" in caught.value.message_dict["default_template"][0]


def test_messages_by_event_take_an_object():
    with pytest.raises(ValidationError) as caught:
        Slack.clean_mappings({"messages": "{{ event }}"})
    assert "must be an object" in caught.value.message_dict["messages"][0]


def test_fixed_text_without_quotes_is_refused_with_a_hint():
    with pytest.raises(ValidationError) as caught:
        Slack.clean_mappings({"messages": {"cancel": "A customer cancelled"}})
    assert "write fixed text in quotes" in caught.value.message_dict["messages"][0]
    with pytest.raises(ValidationError) as caught:
        Slack.clean_settings({"webhook_url": HOOK, "default_template": "Something happened"})
    assert "write fixed text in quotes" in caught.value.message_dict["default_template"][0]
    assert Slack.clean_mappings({"messages": {"cancel": '"A customer cancelled"'}})


def test_slack_is_spaced_at_one_message_a_second():
    assert Slack.rate_limit({}) == 1


# --- what templates read and write ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (1234, "1,234"),
        (1234567.0, "1,234,567"),
        (1234.5, "1,234.5"),
        (0.25, "0.25"),
        (True, "true"),
        (None, ""),
        ("<@U123> & <!channel>", "&lt;@U123&gt; &amp; &lt;!channel&gt;"),
        ({"a": "<b>"}, '{"a":"&lt;b&gt;"}'),
    ],
)
def test_values_are_written_for_slack(value, written):
    assert slack_text(value) == written


def test_a_track_calls_traits_are_the_users_and_an_identify_keeps_its_own():
    integration = integration_of({"messages": {"cancel": "{{ traits.name }} {{ traits.plan }}"}})
    context = PlanContext(profiles={"u1": Profile(traits={"name": "Jane", "plan": "pro"})})
    with_context = track()
    with_context.payload["context"] = {"traits": {"plan": "enterprise"}}
    assert text_of(integration, with_context, context) == "Jane enterprise"

    identify = integration_of({"messages": {"identify": "{{ traits.name || userId }}"}})
    event = EventData("m2", "identify", RECEIVED_AT, {"type": "identify", "userId": "u1"})
    event = EventData("m2", "identify", RECEIVED_AT, event.payload, user_id="u1")
    assert text_of(identify, event, context) == "u1"


def test_an_events_own_message_wins_over_the_default():
    integration = integration_of({"messages": {"cancel": '"own"'}}, default_template='"default"')
    assert text_of(integration, track()) == "own"
    other = EventData("m2", "track", RECEIVED_AT, {"type": "track"}, event="save")
    assert text_of(integration, other) == "default"


def test_a_long_message_is_cut_to_slacks_limit_and_a_huge_one_fails():
    integration = integration_of({"messages": {"cancel": "{{ properties.a }}{{ properties.a }}"}})
    assert len(text_of(integration, track(a="x" * 30_000))) == MAX_TEXT
    config = planning.integration_config(integration)
    plan = Slack.plan(config, [track(a="x" * (MAX_RENDERED // 2 + 1))], PlanContext())
    assert not plan.requests
    assert "more than 64,000 characters" in plan.failures[0]


# --- the connection test and the engine -----------------------------------------------


@responses.activate
def test_the_connection_test_posts_a_test_message(workspace):
    integration = integration_of()
    integration.workspace = workspace
    integration.save()
    responses.post(HOOK, body="ok", status=200)
    result = check_connection(integration)
    assert result.status == ConnectionStatus.OK
    assert json.loads(responses.calls[0].request.body) == {"text": TEST_MESSAGE}
    assert "s3cr3tT0k3n" not in json.dumps(result.as_dict())
    assert "posts a short test message" in result.note


@pytest.mark.django_db
@responses.activate
def test_a_cancel_is_posted_and_the_log_hides_the_webhook_url(source, workspace):
    integration = integration_of(
        {"messages": {"cancel": "{{ traits.name }} cancelled: {{ properties.reason }}"}}
    )
    integration.workspace = workspace
    integration.save()
    responses.post(HOOK, body="ok", status=200)
    send(source, type="identify", userId="u1", traits={"name": "Jane"}, messageId="m0")
    send(source, type="track", userId="u1", event="cancel", messageId="m1",
         properties={"reason": "too expensive"})  # fmt: skip
    deliver_due(integration)

    deliveries = {d.event.message_id: d for d in Delivery.objects.select_related("event")}
    assert deliveries["m1"].status == Delivery.Status.DELIVERED
    assert deliveries["m0"].last_error.startswith("Nothing to send: no Slack message")
    (call,) = responses.calls
    assert json.loads(call.request.body) == {"text": "Jane cancelled: too expensive"}
    exchange = Exchange.objects.get()
    assert exchange.url == REDACTED
    assert "s3cr3tT0k3n" not in json.dumps([exchange.url, exchange.request_headers])


def test_the_api_creates_a_slack_integration_without_showing_its_url(member_client, workspace):
    messages = {"cancel": "{{ traits.name }} cancelled: {{ properties.reason }}"}
    payload = {
        "name": "Churn alerts",
        "kind": "slack",
        "settings": {"webhook_url": HOOK, "default_template": '"Something happened"'},
        "field_mappings": {"messages": messages},
    }
    response = member_client().post(
        f"/api/v1/workspaces/{workspace.slug}/integrations/", payload, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "s3cr3tT0k3n" not in json.dumps(body)
    assert body["field_mappings"] == {"messages": messages}
    assert [f["name"] for f in body["mapped_fields"]] == ["messages"]
    assert Integration.objects.get().config()["webhook_url"] == HOOK
