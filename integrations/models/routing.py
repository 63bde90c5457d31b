"""What ingest leaves for the router: the events of one accepted request, to be routed."""

from typing import Any

from django.db import models
from django.utils import timezone

from integrations.models.workspaces import Workspace


class RoutingJob(models.Model):
    """Events accepted together, not yet turned into per-integration dispatches.

    Ingest writes one job in the transaction that stores the events, so a 200 means the
    events and the record that they still have to be routed are both durable. A job
    carries what routing needs, so the router never reads the events themselves:
    ``entries`` is a list of ``[event id, type, rule name, integrations object or None]``
    (the rule name is a track call's event name, else the call type). The router deletes
    the job in the transaction that writes its dispatches.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    entries = models.JSONField()
    size = models.PositiveIntegerField(help_text="How many events it holds.")
    # When its events were received (the earliest, if they differ).
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"routing job {self.pk} ({len(self.entries)} events)"

    @staticmethod
    def entry(event_id: Any, call_type: str, rule_name: str, integrations: Any) -> list[Any]:
        return [str(event_id), call_type, rule_name, integrations or None]
