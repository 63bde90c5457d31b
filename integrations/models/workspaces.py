"""Workspaces and their members' roles."""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user: Any) -> "WorkspaceQuerySet":
        """The workspaces a user may see: all for superusers, else those they belong to."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def can_be_created_by(user: Any) -> bool:
        """Superusers, and staff users given the ``integrations.add_workspace`` permission,
        create workspaces (in the admin and through the API)."""
        return user.is_active and (
            user.is_superuser or (user.is_staff and user.has_perm("integrations.add_workspace"))
        )


class WorkspaceMembership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        CSM = "csm", "CSM"
        VIEWER = "viewer", "Viewer"

    # Indexed by ``unique_membership`` (user, workspace).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="workspace_memberships",
        db_index=False,
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CSM)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    LAST_ADMIN_MESSAGE = (
        "A workspace must keep at least one admin: make another member an admin first."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.get_role_display()})"

    @classmethod
    def keeps_an_admin(
        cls, workspace_id: int, *, removed: Iterable[int] = (), added: int = 0, lock: bool = True
    ) -> bool:
        """Whether the workspace still has an admin after the admin memberships ``removed``
        (ids; deleted or demoted) stop being admins and ``added`` new admins join.

        A workspace that has no admin at all stays allowed. With ``lock`` (inside a
        transaction), the workspace's admin memberships are locked until it ends, so that
        two admins cannot demote each other at the same time.
        """
        admins = cls.objects.filter(workspace_id=workspace_id, role=cls.Role.ADMIN)
        if lock:
            admins = admins.select_for_update()
        ids = set(admins.values_list("pk", flat=True))
        return not ids or bool(ids - set(removed)) or added > 0
