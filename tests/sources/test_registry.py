"""Sources are registry-driven: the model's kinds, the webhook URLs, the rejected-call
records' credential headers, the catalog and the samples all come from
``integrations/sources/registry.py``, and a new source needs no migration."""

import ast
import importlib
import inspect
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import resolve, reverse

from integrations import catalog, rejections, samples
from integrations.models import Source
from integrations.sources import registry
from integrations.sources.base import KnownEvent, WebhookSource
from integrations.sources.chargebee_retention import ChargebeeRetention


class Extra(WebhookSource):
    """A source added to the registry by a test only."""

    kind = "extra_vendor"
    label = "Extra vendor"
    path = "extra-vendor"
    credential_headers = {"HTTP_X_EXTRA_SIGNATURE": "X-Extra-Signature"}
    known_events = (KnownEvent("extra_happened", "Extra vendor"),)


@pytest.fixture
def extra_source(monkeypatch):
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, Extra))
    monkeypatch.setitem(registry._BY_KIND, Extra.kind, Extra)


def test_the_models_kinds_are_the_registrys():
    field = Source._meta.get_field("kind")
    assert field.choices == registry.kind_choices()
    assert [kind for kind, _ in field.choices] == [cls.kind for cls in registry.SOURCES]
    assert field.default == registry.DEFAULT_KIND


def test_the_migrations_are_complete_and_a_new_source_needs_none(db, extra_source):
    assert ("extra_vendor", "Extra vendor") in Source._meta.get_field("kind").choices
    out = StringIO()
    call_command("makemigrations", "integrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_a_new_kind_is_valid_for_the_model(extra_source, workspace):
    Source(workspace=workspace, name="X", kind="extra_vendor").full_clean()


@pytest.mark.parametrize("cls", registry.SOURCES, ids=lambda cls: cls.kind)
def test_each_source_has_its_declared_webhook_url(cls):
    path = reverse(registry.url_name(cls.kind), kwargs={"token": "tok"})
    assert path == f"/hooks/{cls.path}/tok/"
    match = resolve(path)
    assert match.func.view_class.source_class is cls
    assert match.url_name in rejections.INGEST_URL_NAMES


def test_a_sources_webhook_path_is_its_classs(workspace):
    source = Source.objects.create(workspace=workspace, name="C", kind="chargebee_retention")
    assert source.source_class is ChargebeeRetention
    assert source.webhook_path == f"/hooks/chargebee-retention/{source.webhook_token}/"


def test_every_credential_header_is_left_out_of_rejected_call_records():
    for cls in registry.SOURCES:
        assert cls.credential_headers.items() <= rejections.CREDENTIAL_HEADERS.items()


def test_the_catalog_and_the_samples_come_from_the_registry(extra_source):
    assert [entry.name for entry in catalog.known_events(["extra_vendor"])] == ["extra_happened"]
    assert "extra_happened" in samples.sample_names()


@pytest.mark.parametrize("cls", registry.SOURCES, ids=lambda cls: cls.kind)
def test_each_source_module_is_pure(cls):
    """No ORM, no view, no other source's webhook: the model imports the registry."""
    tree = ast.parse(inspect.getsource(importlib.import_module(cls.__module__)))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    forbidden = {
        "integrations.models",
        "integrations.ingest",
        "integrations.sources.webhooks",
        "integrations.sources.batch",
        "integrations.sources.body",
        "rest_framework",
    }
    assert not {
        name
        for name in imported
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in forbidden)
    }
