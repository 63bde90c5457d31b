"""Workspace scoping of the admin: who sees and changes what.

A CSM is a staff user with workspace memberships. Every ModelAdmin and inline of the app
mixes in :class:`WorkspaceScopedMixin`, which replaces Django's model permissions with the
user's memberships:

* querysets (lists, change pages, search, autocomplete, exports) hold only the objects of
  the user's workspaces;
* any member may view; one of the admin's ``write_roles`` *in the object's workspace*
  (a role is per workspace) is needed to add, change or delete;
* foreign-key choices offer only the workspaces (and their objects) the user may write to,
  so a CSM cannot move or create an object into another workspace;
* list filters over a relation list only the related objects the user may see;
* actions that change anything act only on the selected objects the user may change.

Superusers see and change everything; staff users without a membership see nothing.
"""

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.options import BaseModelAdmin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, QuerySet
from django.db.models.fields.related import RelatedField
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from integrations import audit
from integrations.models import WorkspaceMembership

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

Role = WorkspaceMembership.Role
READ_ROLES: tuple[str, ...] = tuple(Role.values)
EDIT_ROLES: tuple[str, ...] = (Role.ADMIN, Role.CSM)
ADMIN_ROLES: tuple[str, ...] = (Role.ADMIN,)


def workspace_roles(request: HttpRequest) -> dict[int, str]:
    """The user's role in each of their workspaces (workspace id -> role), read once per
    request."""
    roles = getattr(request, "_workspace_roles", None)
    if roles is None:
        user = request.user
        roles = (
            dict(WorkspaceMembership.objects.filter(user=user).values_list("workspace_id", "role"))
            if user.is_authenticated and user.is_active
            else {}
        )
        request._workspace_roles = roles  # type: ignore[attr-defined]  # a per-request cache
    return roles


def workspace_ids(request: HttpRequest, roles: tuple[str, ...] = READ_ROLES) -> set[int] | None:
    """Ids of the workspaces where the user has one of ``roles``; None (all) for superusers."""
    if request.user.is_superuser:
        return None
    return {pk for pk, role in workspace_roles(request).items() if role in roles}


def in_workspaces(path: str, ids: set[int]) -> dict[str, Any]:
    """The filter keeping objects whose workspace (at ``path``; "" for workspaces) is in ids."""
    return {f"{path}__in" if path else "pk__in": ids}


def resolve_workspace_id(obj: Model, path: str) -> int | None:
    """The id of the workspace of ``obj``, following ``path`` (``integration__workspace``)."""
    if not path:
        return obj.pk
    *hops, last = path.split("__")
    target: Any = obj
    for hop in hops:
        target = getattr(target, hop)
        if target is None:
            return None
    return getattr(target, f"{last}_id")


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A list filter over a relation that lists only the related objects the user may see
    (by the related model's admin), never other workspaces' names."""

    def field_choices(
        self, field: RelatedField, request: HttpRequest, model_admin: Any
    ) -> list[tuple[str, "StrOrPromise"]]:
        if request.user.is_superuser:
            return super().field_choices(field, request, model_admin)
        related_admin = model_admin.admin_site._registry.get(field.related_model)
        visible: QuerySet | list[int] = (
            related_admin.get_queryset(request).values("pk")
            if isinstance(related_admin, WorkspaceScopedMixin)
            else []  # nothing of a model that is not workspace-scoped
        )
        ordering = self.field_admin_ordering(field, request, model_admin)
        # A flat list of (pk, label) pairs; the stubs' type also covers groups and blanks.
        return field.get_choices(  # type: ignore[return-value]
            include_blank=False, ordering=ordering, limit_choices_to={"pk__in": visible}
        )


class WorkspaceScopedMixin(BaseModelAdmin):
    """Scoping shared by model admins and inlines; see the module's docstring."""

    #: Roles that may add, change and delete (besides superusers).
    write_roles: tuple[str, ...] = EDIT_ROLES

    def workspace_lookup(self) -> str:
        """The path from ``self.model`` to its workspace ("" for workspaces)."""
        raise NotImplementedError

    def workspace_id_of(self, obj: Model) -> int | None:
        """The workspace of an object that permissions are asked about."""
        raise NotImplementedError

    def may(self, request: HttpRequest, obj: Model | None = None, roles: Any = None) -> bool:
        """Whether the user has one of ``roles`` (default: ``write_roles``) in the workspace of
        ``obj`` or, without an object, in any workspace."""
        if request.user.is_superuser:
            return True
        roles = self.write_roles if roles is None else roles
        mine = workspace_roles(request)
        if obj is None:
            return any(role in roles for role in mine.values())
        workspace_id = self.workspace_id_of(obj)
        return workspace_id is not None and mine.get(workspace_id) in roles

    def scope(
        self, request: HttpRequest, queryset: QuerySet, roles: tuple[str, ...] = READ_ROLES
    ) -> QuerySet:
        """The objects of ``queryset`` in workspaces where the user has one of ``roles``."""
        ids = workspace_ids(request, roles)
        if ids is None:
            return queryset
        return queryset.filter(**in_workspaces(self.workspace_lookup(), ids))

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.may(request, obj, READ_ROLES)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # For an inline, obj is the parent object: adding to it is changing it.
        return self.may(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.may(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.may(request, obj)

    def writable_choices(self, model: type[Model], request: HttpRequest) -> QuerySet:
        """The objects of ``model`` a form may point at: those of the workspaces the user
        may write to (nothing of models that are not workspace-scoped)."""
        related_admin = self.admin_site._registry.get(model)
        if not isinstance(related_admin, WorkspaceScopedMixin):
            return model._default_manager.none()
        ids = workspace_ids(request, self.write_roles) or set()
        return model._default_manager.filter(**in_workspaces(related_admin.workspace_lookup(), ids))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs and not request.user.is_superuser:
            kwargs["queryset"] = self.writable_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class WorkspaceScopedAdmin(WorkspaceScopedMixin, admin.ModelAdmin):
    """A model admin scoped to the user's workspaces."""

    #: The path from the model to its workspace: "workspace", "integration__workspace"...
    #: and "" for the workspace model itself.
    workspace_path: str = "workspace"

    def workspace_lookup(self) -> str:
        return self.workspace_path

    def workspace_id_of(self, obj: Model) -> int | None:
        return resolve_workspace_id(obj, self.workspace_path)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(workspace_roles(request))

    def get_list_filter(self, request: HttpRequest) -> list:
        return [self._scoped_filter(item) for item in super().get_list_filter(request)]

    def _scoped_filter(self, item: Any) -> Any:
        if isinstance(item, str) and get_fields_from_path(self.model, item)[-1].is_relation:
            return (item, ScopedRelatedFieldListFilter)
        return item

    def get_actions(
        self, request: HttpRequest
    ) -> dict[str, tuple[Callable[..., Any], str, str] | None]:
        """Actions; those that change anything act only on the selected objects the user
        may change (actions allowed with the "view" permission alone, such as exports,
        act on every selected object the user sees)."""
        actions = super().get_actions(request)
        # Django's values are never None; the stubs' type allows it.
        return {
            name: (self._on_writable(action[0]), action[1], action[2]) if action else action
            for name, action in actions.items()
        }

    @staticmethod
    def _on_writable(func: Callable) -> Callable:
        if set(getattr(func, "allowed_permissions", ())) == {"view"}:
            return func

        @functools.wraps(func)
        def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> Any:
            return func(
                modeladmin, request, modeladmin.scope(request, queryset, modeladmin.write_roles)
            )

        return action


class ScopedHistoryAdmin(WorkspaceScopedAdmin, SimpleHistoryAdmin):
    """A scoped admin with the object's change history (django-simple-history), read-only:
    the history holds no secrets, so reverting to an old version would lose them."""

    def set_history_delta_changes(
        self, request: HttpRequest, historical_records: Any, foreign_keys_are_objs: bool = True
    ) -> None:
        """What changed in each record, the secret stamps included (see ``audit.delta``)."""
        previous = None
        for current in historical_records:
            if previous is not None:
                helper = self.get_historical_record_context_helper(request, previous)
                changes = helper.context_for_delta_changes(audit.delta(previous, current))
                previous.history_delta_changes = changes
            previous = current

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method != "GET":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class WorkspaceScopedInlineMixin(WorkspaceScopedMixin):
    """An inline scoped through its parent: the parent's admin tells the workspace."""

    parent_model: type[Model]
    fk_name: str | None

    @property
    def parent_admin(self) -> WorkspaceScopedAdmin:
        parent_admin = self.admin_site._registry[self.parent_model]
        if not isinstance(parent_admin, WorkspaceScopedAdmin):
            raise ImproperlyConfigured(f"{type(self).__name__} needs a workspace-scoped parent")
        return parent_admin

    def workspace_lookup(self) -> str:
        fk = self.fk_name or next(
            field.name
            for field in self.model._meta.get_fields()
            if field.many_to_one and field.related_model is self.parent_model
        )
        return "__".join(filter(None, [fk, self.parent_admin.workspace_lookup()]))

    def workspace_id_of(self, obj: Model) -> int | None:
        # Django asks an inline's permissions about the parent object.
        return self.parent_admin.workspace_id_of(obj)


class ScopedTabularInline(WorkspaceScopedInlineMixin, admin.TabularInline):
    pass
