"""The event tester on the integration's admin page: preview the exact requests an event
would make (redacted, nothing sent) or send it as a test delivery and see the answer.

Any member of the workspace previews (a preview reads, and shows no secret); sending
needs the right to change the integration (a CSM or an admin of its workspace).
"""

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path

from integrations import catalog, samples
from integrations.admin.delivery_log import STATUS_COLOURS, latest_attempt_panels, pretty
from integrations.delivery import tester
from integrations.models import Integration
from integrations.sources import registry
from integrations.sources.segment_spec import MessageError


def sample_choices() -> list[tuple[str, Any]]:
    """The samples, grouped as the catalog groups their events."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for entry in catalog.known_events([source.kind for source in registry.all_sources()]):
        groups.setdefault(entry.group, []).append((entry.name, entry.name))
    return [
        ("", "— pick a sample —"),
        ("Calls", [(name, name) for name in samples.GENERIC]),
        *groups.items(),
    ]


class EventTesterForm(forms.Form):
    sample = forms.ChoiceField(choices=sample_choices, required=False)
    event = forms.CharField(
        label="or an event (JSON)",
        required=False,
        strip=True,
        widget=forms.Textarea(
            attrs={"rows": 8, "cols": 70, "spellcheck": "false", "class": "vLargeTextField"}
        ),
        help_text='A Segment message, e.g. {"type": "track", "userId": "u-1", "event": '
        '"Signed Up"}; used instead of the sample when given.',
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        text, name = cleaned.get("event"), cleaned.get("sample")
        if text:
            try:
                message = json.loads(text)
            except ValueError as exc:
                self.add_error("event", f"This is not JSON: {exc}.")
                return cleaned
            except RecursionError:
                self.add_error("event", "This JSON nests objects and arrays too deep.")
                return cleaned
            if not isinstance(message, dict):
                self.add_error("event", "An event is a JSON object ({...}).")
                return cleaned
            cleaned["message"] = message
        elif name:
            cleaned["message"] = samples.sample(name)
        else:
            raise forms.ValidationError("Pick a sample or paste an event.")
        return cleaned


class EventTesterMixin(admin.ModelAdmin):
    """Adds ``<id>/test/`` (the tester's page) and the tester's form on the change page (a
    ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    def get_urls(self) -> list:
        test = path(
            "<path:object_id>/test/",
            self.admin_site.admin_view(self.tester_view),
            name="integrations_integration_test",
        )
        return [test, *super().get_urls()]

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        obj = kwargs.get("obj")
        if obj is not None:
            context["tester_form"] = EventTesterForm()
            context["may_send_tests"] = self.has_change_permission(request, obj)
        return super().render_change_form(request, context, *args, **kwargs)

    def tester_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration: Integration = get_object_or_404(self.get_queryset(request), pk=object_id)
        may_send = self.has_change_permission(request, integration)
        form = EventTesterForm(request.POST if request.method == "POST" else None)
        result: dict[str, Any] = {}
        if form.is_valid():
            send = request.POST.get("action") == "send"
            if send and not may_send:
                raise PermissionDenied
            message = form.cleaned_data["message"]
            try:
                preview = tester.preview(integration, message)
            except MessageError as exc:
                form.add_error("event" if form.cleaned_data.get("event") else None, exc.message)
            else:
                result = {
                    "preview": preview,
                    "asked_to_send": send,
                    "message": pretty(preview.message),
                    "requests": [{**r, "body": pretty(r["body"])} for r in preview.requests],
                }
                if send and preview.routed:
                    delivery = tester.send(integration, message)
                    result.update(
                        delivery=delivery,
                        message=pretty(delivery.event.payload),
                        colour=STATUS_COLOURS[delivery.status],
                        exchange=latest_attempt_panels(delivery),
                    )
        context = {
            **self.admin_site.each_context(request),
            "opts": Integration._meta,
            "original": integration,
            "title": f"Event tester: {integration.name}",
            "tester_form": form,
            "may_send_tests": may_send,
            "result": result,
        }
        return TemplateResponse(request, "admin/integrations/integration/tester.html", context)
