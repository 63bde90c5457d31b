"""DRF's API token admin, made safe: a token key is a password.

DRF's own admin lists every key in full, and names a token by its key in page titles,
deletion pages and the admin's log. Here only superusers see the list, each key shortened
to a prefix (enough to tell tokens apart), and no page of a single token exists. Tokens
are made with ``manage.py drf_create_token <user>`` (``-r`` replaces one).
"""

from django.contrib import admin
from django.http import HttpRequest
from rest_framework.authtoken import admin as authtoken_admin
from rest_framework.authtoken.models import Token, TokenProxy

KEY_PREFIX_LENGTH = 6


class TokenAdmin(authtoken_admin.TokenAdmin):
    list_display = ["key_prefix", "user", "created"]
    list_display_links = None

    @admin.display(description="Key")
    def key_prefix(self, token: Token) -> str:
        return f"{token.key[:KEY_PREFIX_LENGTH]}…"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        # The list only: a token's own page would show its key in the title.
        return request.user.is_superuser and obj is None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        return False


if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, TokenAdmin)
