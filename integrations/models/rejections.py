"""The log of rejected inbound calls: refused ingest requests and refused batch messages."""

from django.db import models
from django.utils import timezone

from integrations.models.sources import Source
from integrations.models.workspaces import Workspace


class RejectedCallQuerySet(models.QuerySet["RejectedCall"]):
    def prune(self, workspace_id: int | None, keep: int) -> int:
        """Delete all but the newest ``keep`` calls of a workspace (None: the calls no
        workspace could be told for, such as unknown write keys); returns how many went.

        Two queries on the (workspace, -received_at) index: the ``keep``-th newest time,
        then the delete of what is older.
        """
        mine = (
            self.filter(workspace__isnull=True)
            if workspace_id is None
            else self.filter(workspace_id=workspace_id)
        )
        cutoff = mine.order_by("-received_at").values_list("received_at", flat=True)[
            keep - 1 : keep
        ]
        if not cutoff:
            return 0
        deleted, _ = mine.filter(received_at__lt=cutoff[0]).delete()
        return deleted


class RejectedCall(models.Model):
    """An inbound call (tracking API, Segment or Purchasely webhook) that was refused as a
    whole, or accepted with some of its messages refused (one row per request, with the
    count).

    Nothing secret is kept: never the write key, signature, shared secret or body; at most
    the first characters of an unknown write key (see ``rejections.key_hint``).
    """

    received_at = models.DateTimeField(default=timezone.now)
    # Indexed by the (workspace, -received_at) index below.
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="rejected_calls",
        db_index=False,
        help_text="Empty when the call named no known source (superusers only see those).",
    )
    source = models.ForeignKey(
        Source, on_delete=models.SET_NULL, null=True, blank=True, related_name="rejected_calls"
    )
    endpoint = models.CharField(max_length=200, help_text="The path; webhook tokens left out.")
    status_code = models.PositiveSmallIntegerField("HTTP status")
    code = models.CharField("error code", max_length=64)
    message = models.CharField(max_length=500)
    rejected_messages = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Messages refused in a batch; empty when the whole call was refused "
        "before its messages were read.",
    )
    client_ip = models.GenericIPAddressField("client address", null=True, blank=True)
    summary = models.CharField(
        max_length=300, blank=True, help_text="Size, content type and credentials presented."
    )

    objects = RejectedCallQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["workspace", "-received_at"], name="rejected_ws_received"),
        ]

    def __str__(self) -> str:
        return f"{self.status_code} {self.code} on {self.endpoint}"
