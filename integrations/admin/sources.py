"""Sources in the admin: their keys with copy buttons, a write-only webhook secret, and key
regeneration behind a confirmation.

A webhook secret is shown once, on the page that answers the request that made it (a
regeneration, or the creation of a source with a generated secret), so the CSM can paste it
into the vendor (Segment, Purchasely, Chargebee Retention); that page is not cached, and no
other page ever shows it.
"""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from integrations.admin.debugger import SourceDebuggerMixin
from integrations.admin.scoping import ScopedHistoryAdmin
from integrations.links import absolute_url
from integrations.models import Source
from integrations.sources import registry

REGENERATED = "Regenerated the write key, webhook URL and webhook secret."


class SourceForm(forms.ModelForm):
    """A source; its webhook secret can be replaced or removed, never read."""

    new_webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    remove_webhook_secret = forms.BooleanField(
        label="Remove the webhook secret",
        required=False,
        help_text="Webhook calls are then accepted without a signature check.",
    )

    class Meta:
        model = Source
        fields = ["workspace", "name", "kind", "enabled", "accept_legacy_signatures"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "new_webhook_secret" in self.fields:
            if self.instance.pk is None:
                help_text = "Leave empty to generate one: it is shown once, after saving."
            elif self.instance.webhook_secret:
                help_text = "Set (never shown). Type a new one to replace it; empty keeps it."
            else:
                help_text = "Not set: webhook signatures are not checked. Type one to set it."
            self.fields["new_webhook_secret"].help_text = help_text

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("new_webhook_secret") and cleaned.get("remove_webhook_secret"):
            raise forms.ValidationError("Give a new webhook secret or remove it, not both.")
        kind = cleaned.get("kind")
        if (
            cleaned.get("accept_legacy_signatures")
            and kind
            and not registry.get(kind).legacy_signatures_option
        ):
            self.add_error(
                "accept_legacy_signatures",
                f"{registry.get(kind).label} has no older signature scheme to accept.",
            )
        return cleaned

    def save(self, commit: bool = True) -> Source:
        if secret := self.cleaned_data.get("new_webhook_secret"):
            self.instance.webhook_secret = secret
        elif self.cleaned_data.get("remove_webhook_secret"):
            self.instance.webhook_secret = ""
        return super().save(commit)


@admin.register(Source)
class SourceAdmin(SourceDebuggerMixin, ScopedHistoryAdmin):
    form = SourceForm
    change_form_template = "admin/integrations/source/change_form.html"
    list_display = ["name", "workspace", "kind", "enabled", "write_key", "created_at"]
    list_filter = ["kind", "enabled", "workspace"]
    search_fields = ["name", "write_key", "workspace__name"]
    actions = ["regenerate_keys"]

    def get_fieldsets(self, request: HttpRequest, obj: Source | None = None) -> list:
        main = ["workspace", "name", "kind", "enabled", "accept_legacy_signatures"]
        fieldsets: list = [(None, {"fields": main})]
        if obj is None or self.has_change_permission(request, obj):
            secret = ["new_webhook_secret", "remove_webhook_secret"]
            fieldsets.append(("Webhook secret", {"fields": secret}))
        return fieldsets

    def get_urls(self) -> list:
        regenerate = path(
            "<path:object_id>/regenerate-keys/",
            self.admin_site.admin_view(self.regenerate_view),
            name="integrations_source_regenerate_keys",
        )
        return [regenerate, *super().get_urls()]

    def keys(self, request: HttpRequest, source: Source) -> dict[str, Any]:
        """What the keys panel shows: never the webhook secret."""
        return {
            "source": source,
            "write_key": source.write_key,
            "webhook_url": absolute_url(source.webhook_path, request),
            "has_secret": bool(source.webhook_secret),
        }

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        obj = kwargs.get("obj")
        if obj is not None and obj.pk:
            context["keys"] = self.keys(request, obj)
            context["may_regenerate"] = self.has_change_permission(request, obj)
        return super().render_change_form(request, context, *args, **kwargs)

    def response_add(self, request: HttpRequest, obj: Source, *args: Any, **kwargs: Any) -> Any:
        """A generated secret is shown once, on the answer to the creation."""
        generated = obj.webhook_secret and not request.POST.get("new_webhook_secret")
        if IS_POPUP_VAR in request.POST or not generated:
            return super().response_add(request, obj, *args, **kwargs)
        self.message_user(request, f"The source “{obj}” was added.", messages.SUCCESS)
        return self.new_keys_page(request, [obj], title=f"New source: {obj.name}")

    def regenerate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        source = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        if request.method == "POST":
            return self.regenerate(request, [source])
        return self.confirmation_page(request, [source])

    @admin.action(
        description="Regenerate write key, webhook URL and secret…", permissions=["change"]
    )
    def regenerate_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> Any:
        sources = list(queryset.select_related("workspace"))
        if not sources:
            self.message_user(request, "No source you may change was selected.", messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            return self.regenerate(request, sources)
        return self.confirmation_page(request, sources, action="regenerate_keys")

    def regenerate(self, request: HttpRequest, sources: Sequence[Source]) -> HttpResponse:
        with transaction.atomic():
            for source in sources:
                source._change_reason = "Keys regenerated"  # type: ignore[attr-defined]
                source.regenerate_keys()
                self.log_change(request, source, REGENERATED)
        self.message_user(
            request, f"New keys for {len(sources)} source(s): the old ones no longer work."
        )
        return self.new_keys_page(request, sources, title="New keys")

    def confirmation_page(
        self, request: HttpRequest, sources: Sequence[Source], action: str = ""
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Regenerate keys?",
            "sources": [self.keys(request, source) for source in sources],
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/integrations/source/regenerate_keys_confirm.html", context
        )

    def new_keys_page(
        self, request: HttpRequest, sources: Sequence[Source], title: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "sources": [
                {**self.keys(request, source), "secret": source.webhook_secret}
                for source in sources
            ],
            "changelist_url": reverse("admin:integrations_source_changelist"),
        }
        response = TemplateResponse(request, "admin/integrations/source/new_keys.html", context)
        add_never_cache_headers(response)
        return response
