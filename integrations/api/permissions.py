"""Who may do what in a workspace: members read, admins and CSMs write, superusers all."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from integrations.models import Workspace, WorkspaceMembership

Role = WorkspaceMembership.Role


def role_in(user: Any, workspace: Workspace) -> str | None:
    """The user's role in the workspace (superusers count as admins), or None."""
    if user.is_superuser:
        return Role.ADMIN
    return (
        WorkspaceMembership.objects.filter(user=user, workspace=workspace)
        .values_list("role", flat=True)
        .first()
    )


class WorkspaceRolePermission(BasePermission):
    """Reads need a membership; writes need one of the view's ``write_roles``."""

    message = "Your role in this workspace does not allow this change."

    def has_permission(self, request: Request, view: Any) -> bool:
        role = role_in(request.user, view.workspace)
        if role is None:
            return False
        if request.method in SAFE_METHODS:
            return True
        return role in getattr(view, "write_roles", (Role.ADMIN, Role.CSM))


class WorkspaceCreatePermission(BasePermission):
    """Creating a workspace is for superusers and staff users given the permission."""

    message = (
        "Only superusers and staff users with the permission to add workspaces create workspaces."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return view.action != "create" or Workspace.can_be_created_by(request.user)
