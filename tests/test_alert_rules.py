"""Alert rules in the configuration API and the admin: validation, roles, write-only URL
targets, the audit trail of changes, and the incidents list."""

import pytest
from django.core import mail
from django.utils import timezone

from integrations.models import AlertIncident, AlertRule, Workspace, WorkspaceMembership
from tests.admin_clients import member
from tests.test_fanout import make_integration

Role = WorkspaceMembership.Role
SLACK = "https://hooks.slack.com/services/T0001/B0002/abcdefSECRETtoken"


def rules_url(workspace, pk=None) -> str:
    base = f"/api/v1/workspaces/{workspace.slug}/alert-rules/"
    return f"{base}{pk}/" if pk else base


def slack_rule(workspace) -> AlertRule:
    return AlertRule.objects.create(
        workspace=workspace,
        name="Slack on auth errors",
        channel="slack",
        target=SLACK,
        condition="auth_error",
    )


# --- API ------------------------------------------------------------------------------


def test_a_csm_creates_an_email_rule(member_client, workspace):
    response = member_client().post(
        rules_url(workspace),
        {
            "name": "Failures",
            "channel": "email",
            "target": "oncall@example.com",
            "condition": "failure_rate",
            "threshold": 25,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ("name", "channel", "target", "condition", "threshold")} == {
        "name": "Failures",
        "channel": "email",
        "target": "oncall@example.com",
        "condition": "failure_rate",
        "threshold": 25.0,
    }
    assert AlertRule.objects.get().workspace == workspace


def test_a_slack_url_is_write_only(member_client, workspace):
    client = member_client()
    created = client.post(
        rules_url(workspace),
        {"name": "Slack", "channel": "slack", "target": SLACK, "condition": "auth_error"},
        format="json",
    ).json()
    assert created["target"] == "https://hooks.slack.com/…"
    listed = client.get(rules_url(workspace)).json()["results"]
    assert "SECRET" not in str(listed)
    rule = AlertRule.objects.get()
    assert rule.target == SLACK
    # The masked value sent back, or no target in a PATCH, keeps the URL.
    put = client.put(rules_url(workspace, rule.pk), {**created, "name": "Slack!"}, format="json")
    assert put.status_code == 200, put.json()
    patch = client.patch(rules_url(workspace, rule.pk), {"name": "S"}, format="json")
    assert patch.status_code == 200
    rule.refresh_from_db()
    assert (rule.name, rule.target) == ("S", SLACK)
    new = "https://hooks.slack.com/services/T9/B9/other"
    client.patch(rules_url(workspace, rule.pk), {"target": new}, format="json")
    rule.refresh_from_db()
    assert rule.target == new
    # Moving to email needs an address, not the masked URL.
    response = client.patch(
        rules_url(workspace, rule.pk), {"channel": "email", "target": created["target"]}
    )
    assert response.status_code == 400
    assert "email address" in response.json()["errors"]["target"][0]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"channel": "email", "target": "not an address"}, "target", "valid email address"),
        ({"channel": "slack", "target": "ftp://hooks.example.com/x"}, "target", "valid URL"),
        ({"channel": "webhook", "target": "https://u:p@x.example.com/"}, "target", "password"),
        ({"condition": "failure_rate"}, "threshold", "needs a threshold"),
        ({"condition": "failure_rate", "threshold": 150}, "threshold", "at most 100"),
        ({"condition": "backlog_age", "threshold": 0}, "threshold", "greater than 0"),
        ({"condition": "auth_error", "threshold": 5}, "threshold", "takes no threshold"),
        ({"channel": "sms"}, "channel", "not a valid choice"),
        ({"name": 7}, "name", "must be a string"),
        ({"condition": "failure_rate", "threshold": "25"}, "threshold", "must be a number"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(member_client, workspace, fields, field, message):
    body = {
        "name": "R",
        "channel": "email",
        "target": "a@example.com",
        "condition": "stalled_worker",
        **fields,
    }
    response = member_client().post(rules_url(workspace), body, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["errors"][field])


def test_http_urls_only_where_private_urls_are_allowed(member_client, workspace, settings):
    body = {"name": "R", "channel": "webhook", "condition": "auth_error"}
    client = member_client()
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    refused = client.post(
        rules_url(workspace), {**body, "target": "http://x.example.com/"}, format="json"
    )
    assert refused.status_code == 400 and "(https)" in str(refused.json()["errors"])
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = True
    allowed = client.post(
        rules_url(workspace), {**body, "target": "http://127.0.0.1:9/"}, format="json"
    )
    assert allowed.status_code == 201


def test_a_stalled_worker_rule_defaults_to_five_minutes(member_client, workspace):
    member_client().post(
        rules_url(workspace),
        {"name": "W", "channel": "email", "target": "a@example.com", "condition": "stalled_worker"},
        format="json",
    )
    assert AlertRule.objects.get().stall_minutes == 5


def test_viewers_read_and_outsiders_see_nothing(member_client, workspace, django_user_model):
    slack_rule(workspace)
    viewer = member_client(Role.VIEWER, "viewer")
    assert viewer.get(rules_url(workspace)).json()["count"] == 1
    response = viewer.post(
        rules_url(workspace),
        {"name": "X", "channel": "email", "target": "a@example.com", "condition": "auth_error"},
        format="json",
    )
    assert response.status_code == 403
    other = Workspace.objects.create(name="Other", slug="other")
    outsider = member_client(username="outsider")
    WorkspaceMembership.objects.filter(user__username="outsider").update(workspace=other)
    assert outsider.get(rules_url(workspace)).status_code == 404


def test_rule_changes_are_audited_without_the_target(member_client, workspace):
    client = member_client()
    created = client.post(
        rules_url(workspace),
        {"name": "Slack", "channel": "slack", "target": SLACK, "condition": "auth_error"},
        format="json",
    ).json()
    client.patch(rules_url(workspace, created["id"]), {"target": SLACK + "-new"}, format="json")
    rule = AlertRule.objects.get()
    records = list(rule.history.order_by("history_id"))
    assert [r.history_user.username for r in records] == ["csm", "csm"]
    assert records[1].target_changed_at is not None
    assert not hasattr(records[0], "target")


def test_the_schema_documents_alert_rules(api_client, db):
    paths = api_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    listing = paths["/api/v1/workspaces/{workspace_slug}/alert-rules/"]
    assert {"get", "post"} <= set(listing)
    assert "stalled_worker" in listing["get"]["description"]


# --- admin ----------------------------------------------------------------------------

ADD = "/admin/integrations/alertrule/add/"


def change_url(rule) -> str:
    return f"/admin/integrations/alertrule/{rule.pk}/change/"


def form_data(rule, **changes):
    data = {
        "workspace": rule.workspace_id,
        "name": rule.name,
        "channel": rule.channel,
        "target": "",
        "condition": rule.condition,
        "threshold": "" if rule.threshold is None else rule.threshold,
    }
    return {**data, **changes}


def test_a_csm_adds_a_rule_in_the_admin(csm, workspace):
    response = csm.post(
        ADD,
        {
            "workspace": workspace.pk,
            "name": "Backlog",
            "channel": "email",
            "target": "oncall@example.com",
            "condition": "backlog_age",
            "threshold": "30",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = AlertRule.objects.get()
    assert (rule.target, rule.threshold) == ("oncall@example.com", 30)


def test_the_admin_checks_the_threshold(csm, workspace):
    response = csm.post(
        ADD,
        {
            "workspace": workspace.pk,
            "name": "Failures",
            "channel": "email",
            "target": "oncall@example.com",
            "condition": "failure_rate",
            "threshold": "",
        },
    )
    assert response.status_code == 200
    assert "failure_rate needs a threshold" in response.content.decode()


def test_the_admin_never_shows_a_url_target_and_keeps_it(csm, workspace):
    rule = slack_rule(workspace)
    page = csm.get(change_url(rule)).content.decode()
    assert "SECRET" not in page and "B0002" not in page
    assert "Set: https://hooks.slack.com/…" in page
    assert csm.post(change_url(rule), form_data(rule, name="Renamed")).status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.target) == ("Renamed", SLACK)
    listing = csm.get("/admin/integrations/alertrule/").content.decode()
    assert "https://hooks.slack.com/…" in listing and "SECRET" not in listing


def test_switching_to_email_needs_an_address(csm, workspace):
    rule = slack_rule(workspace)
    response = csm.post(change_url(rule), form_data(rule, channel="email"))
    assert response.status_code == 200
    assert "Give an email address or a URL." in response.content.decode()


def test_a_viewer_reads_the_rule_with_the_host_only(viewer, workspace):
    rule = slack_rule(workspace)
    page = viewer.get(change_url(rule)).content.decode()
    assert "Slack on auth errors" in page and "https://hooks.slack.com/…" in page
    assert "SECRET" not in page
    assert viewer.post(change_url(rule), form_data(rule, name="X")).status_code == 403


def test_the_test_notification_action(csm, workspace):
    rule = AlertRule.objects.create(
        workspace=workspace,
        name="Mail me",
        channel="email",
        target="oncall@example.com",
        condition="auth_error",
    )
    response = csm.post(
        "/admin/integrations/alertrule/",
        {"action": "send_test_notice", "_selected_action": [rule.pk]},
        follow=True,
    )
    assert "test sent to oncall@example.com" in response.content.decode()
    (email,) = mail.outbox
    assert email.subject == "[Acme] Test: Mail me" and email.to == ["oncall@example.com"]


def test_incidents_are_listed_read_only(csm, workspace, django_user_model):
    rule = slack_rule(workspace)
    hook = make_integration(workspace)
    now = timezone.now()
    incident = AlertIncident.objects.create(
        rule=rule, integration=hook, opened_at=now, last_seen_at=now, detail="HTTP 401 seen"
    )
    listing = csm.get("/admin/integrations/alertincident/?state=open").content.decode()
    assert "HTTP 401 seen" in listing and "pending" in listing
    rules = csm.get("/admin/integrations/alertrule/").content.decode()
    assert f"?rule__id__exact={rule.pk}&amp;state=open" in rules
    assert csm.get("/admin/integrations/alertincident/add/").status_code == 403
    page = csm.get(f"/admin/integrations/alertincident/{incident.pk}/change/").content.decode()
    assert "HTTP 401 seen" in page and 'name="detail"' not in page
    other = Workspace.objects.create(name="Other", slug="other")
    outsider = member(django_user_model, other, Role.CSM, "outsider")
    assert (
        "HTTP 401 seen" not in outsider.get("/admin/integrations/alertincident/").content.decode()
    )
