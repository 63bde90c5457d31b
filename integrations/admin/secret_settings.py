"""Integration settings that hold secrets, in the admin: custom headers whose values are
write-only, and the page that shows a generated secret once.

A secret generated on save (a webhook's signing secret left empty) is shown on the page
that answers that save, so the CSM can paste it into the receiver; that page is not
cached, and no other page ever shows it (the change page says it is set).
"""

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from integrations.models import Integration


class HeadersField(forms.CharField):
    """Custom headers, one a line as ``Name: value``.

    Values are write-only: the form shows each stored header as ``Name:`` with its value
    left out, and a line without a value keeps the stored value; deleting a line removes
    the header. Cleans to a dict of names to values ("" for a kept value).
    """

    widget = forms.Textarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        help_text = kwargs.pop("help_text", "")
        kwargs["help_text"] = (
            f"{help_text} One a line, as <code>Name: value</code>. Stored values are not "
            "shown: a line without a value keeps it; delete a line to remove the header."
        ).strip()
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):  # never the values
            value = list(value)
        if isinstance(value, list | tuple):
            return "\n".join(f"{name}:" for name in value)
        return value

    # Text in (a CharField's input handling and validators), a dict of headers out.
    def to_python(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        headers: dict[str, str] = {}
        for number, line in enumerate(str(value or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, header = line.partition(":")
            name = name.strip()
            if not colon or not name:
                raise forms.ValidationError(
                    f"Line {number}: write a header as “Name: value”.", code="invalid"
                )
            if name in headers:
                raise forms.ValidationError(f"{name} is listed twice.", code="invalid")
            headers[name] = header.strip()
        return headers


class GeneratedSecretsMixin(admin.ModelAdmin):
    """A ``ModelAdmin`` mixin: the answer to a save that generated secrets shows them once
    (a ``ModelAdmin`` itself, for the admin's methods it calls, listed before the admin)."""

    def response_add(
        self, request: HttpRequest, obj: Integration, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        if IS_POPUP_VAR in request.POST or not obj.generated_secrets:
            return super().response_add(request, obj, *args, **kwargs)
        self.message_user(request, f"The integration “{obj}” was added.", messages.SUCCESS)
        return self.generated_secrets_page(request, obj, f"New integration: {obj.name}")

    def response_change(self, request: HttpRequest, obj: Integration) -> HttpResponse:
        if IS_POPUP_VAR in request.POST or not obj.generated_secrets:
            return super().response_change(request, obj)
        self.message_user(request, f"The integration “{obj}” was changed.", messages.SUCCESS)
        return self.generated_secrets_page(request, obj, f"New secret: {obj.name}")

    def generated_secrets_page(
        self, request: HttpRequest, obj: Integration, title: str
    ) -> HttpResponse:
        fields = obj.destination.fields()
        context = {
            **self.admin_site.each_context(request),
            "opts": obj._meta,
            "title": title,
            "integration": obj,
            "secrets": [
                {"name": name, "label": fields[name].label, "value": value}
                for name, value in obj.generated_secrets.items()
            ],
            "change_url": reverse("admin:integrations_integration_change", args=[obj.pk]),
            "changelist_url": reverse("admin:integrations_integration_changelist"),
        }
        response = TemplateResponse(
            request, "admin/integrations/integration/generated_secrets.html", context
        )
        add_never_cache_headers(response)
        return response
