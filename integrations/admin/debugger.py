"""The live event debugger of a source, after Segment's Source Debugger: a page that
shows the source's newest events as they arrive, polling a small JSON endpoint.

Both are admin views of the source (session-authenticated, for any member of its
workspace). The endpoint answers the newest events (at most ``PAGE``) received since the
client's cursor (the time of its previous call) less ``OVERLAP``: an event is stamped
when its request arrives but becomes visible when its transaction commits, so one
stamped earlier can appear after a later one was shown; the page drops the events it
already shows (by id). The first call (no cursor) looks back ``LOOKBACK``. Filters
(type, event name, user id) are exact matches, answered with the events table's
``(workspace, …)`` indexes.
"""

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from integrations.models import Event, Source

PAGE = 50
OVERLAP = dt.timedelta(seconds=30)
LOOKBACK = dt.timedelta(hours=24)
POLL_SECONDS = 2
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width: the page sorts these as text


class DebuggerQuery(forms.Form):
    since = forms.DateTimeField(required=False)
    type = forms.ChoiceField(choices=[("", "All types"), *Event.Type.choices], required=False)
    event = forms.CharField(max_length=200, required=False, strip=True)
    user_id = forms.CharField(max_length=255, required=False, strip=True)


def newest_events(
    source: Source,
    *,
    since: dt.datetime | None = None,
    type: str = "",
    event: str = "",
    user_id: str = "",
    now: dt.datetime | None = None,
) -> list[Event]:
    """The source's newest events received since ``since`` less ``OVERLAP`` (never
    further back than ``LOOKBACK``), newest first, at most ``PAGE``."""
    oldest = (now or timezone.now()) - LOOKBACK
    floor = max(since - OVERLAP, oldest) if since else oldest
    events = Event.objects.filter(
        workspace_id=source.workspace_id, source=source, received_at__gte=floor
    )
    exact = {"type": type, "event": event, "user_id": user_id}
    events = events.filter(**{name: value for name, value in exact.items() if value})
    return list(events.order_by("-received_at", "-id")[:PAGE])


def _display_name(event: Event) -> str:
    if event.event:
        return event.event
    name = event.payload.get("name") if isinstance(event.payload, dict) else None
    return name if isinstance(name, str) else ""


def as_json(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "received_at": event.received_at.astimezone(dt.UTC).strftime(TIME_FORMAT),
        "type": event.type,
        "name": _display_name(event),
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "message_id": event.message_id,
        "is_test": event.is_test,
        "payload": event.payload,
    }


class SourceDebuggerMixin(admin.ModelAdmin):
    """Adds the live debugger page and its JSON endpoint to the source admin (a
    ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/debugger/",
                self.admin_site.admin_view(self.debugger_view),
                name="integrations_source_debugger",
            ),
            path(
                "<path:object_id>/debugger/events/",
                self.admin_site.admin_view(self.debugger_events_view),
                name="integrations_source_debugger_events",
            ),
            *super().get_urls(),
        ]

    def _source(self, request: HttpRequest, object_id: str) -> Source:
        return get_object_or_404(
            self.get_queryset(request).select_related("workspace"),
            pk=object_id,
        )

    def debugger_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        source = self._source(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": Source._meta,
            "original": source,
            "title": f"Live debugger: {source.name}",
            "events_url": reverse("admin:integrations_source_debugger_events", args=[source.pk]),
            "poll_ms": POLL_SECONDS * 1000,
            "form": DebuggerQuery(),
        }
        return TemplateResponse(request, "admin/integrations/source/debugger.html", context)

    def debugger_events_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        source = self._source(request, object_id)
        query = DebuggerQuery(request.GET)
        if not query.is_valid():
            return JsonResponse(
                {
                    "code": "invalid",
                    "message": "The request is invalid; see errors for each field.",
                    "errors": {name: list(errors) for name, errors in query.errors.items()},
                },
                status=400,
            )
        now = timezone.now()
        events = newest_events(source, now=now, **query.cleaned_data)
        response = JsonResponse(
            {
                "events": [as_json(event) for event in events],
                # The next call looks from here (less OVERLAP).
                "cursor": now.astimezone(dt.UTC).strftime(TIME_FORMAT),
            }
        )
        add_never_cache_headers(response)
        return response
