"""Every registered source, through its fixtures: each is posted to the source's webhook
URL signed with a test secret, as its vendor signs, and must be answered 200 with the
expected stored messages; posted again (a redelivery), it must store nothing more. A
registered source without fixtures fails."""

import json

import pytest

from integrations.models import Event, Source
from integrations.sources import registry
from tests.sources.fixtures import cases, load, matches, paths, unmatched

SECRET = "contract-test-secret"
KINDS = [cls.kind for cls in registry.all_sources()]


def meta(headers: dict[str, str]) -> dict[str, str]:
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}


def post(client, source: Source, raw: bytes):
    headers = source.source_class.signature_headers(SECRET, raw)
    return client.post(
        source.webhook_path, data=raw, content_type="application/json", **meta(headers)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_source_has_fixtures(kind):
    assert paths(kind), f"no fixtures in tests/fixtures/sources/{kind}/"


@pytest.mark.parametrize(("kind", "path"), cases(KINDS))
def test_each_fixture_is_accepted_end_to_end(api_client, workspace, kind, path):
    case = load(path)
    source = Source.objects.create(workspace=workspace, name=kind, kind=kind, webhook_secret=SECRET)
    raw = json.dumps(case["body"]).encode()
    response = post(api_client, source, raw)
    assert response.status_code == 200, response.json()
    assert matches(case["expected"]["response"], response.json()), response.json()
    stored = list(Event.objects.filter(source=source).values_list("payload", flat=True))
    expected = case["expected"]["messages"]
    assert len(stored) == len(expected), stored
    assert not unmatched(expected, stored), stored

    again = post(api_client, source, raw)
    assert again.status_code == 200, again.json()
    assert Event.objects.filter(source=source).count() == len(expected)


@pytest.mark.parametrize(("kind", "path"), cases(KINDS))
def test_each_fixture_with_a_wrong_signature_is_401(api_client, workspace, kind, path):
    source = Source.objects.create(
        workspace=workspace, name=kind, kind=kind, webhook_secret="another-secret"
    )
    response = post(api_client, source, json.dumps(load(path)["body"]).encode())
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not Event.objects.exists()
