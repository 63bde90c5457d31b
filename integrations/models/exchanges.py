"""The exchange log: every HTTP request sent to a vendor and its answer, stored once.

A batch request carries many deliveries; it is one ``Exchange`` row, and each delivery it
carried refers to it (``Delivery.exchange`` for the latest attempt, ``DeliveryAttempt``
for earlier ones) with its own outcome. A multi-step attempt (ChartMogul's lookup, then
its write) is a chain: the first exchange, and the later steps pointing to it through
``head``. Secrets are redacted before anything is stored.
"""

from django.db import models
from django.utils import timezone

from integrations.models.integrations import Integration


class Exchange(models.Model):
    RESPONSE_BODY_LIMIT = 20 * 1024

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="exchanges", db_index=False
    )
    started_at = models.DateTimeField(default=timezone.now)
    # The first exchange of a multi-step attempt, for the later steps; step 0 has none.
    head = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="steps",
        db_index=False,
    )
    step = models.PositiveSmallIntegerField(default=0)
    method = models.CharField(max_length=8)
    url = models.TextField()
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "pk"]
        indexes = [
            models.Index(fields=["integration", "-started_at"], name="exchange_int_started"),
            models.Index(
                fields=["head"], name="exchange_head", condition=models.Q(head__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.response_status or self.error or '-'}"

    def chain(self) -> list["Exchange"]:
        """This exchange and the later steps of its attempt, in order."""
        return [self, *self.steps.order_by("step")]

    def carried_delivery_ids(self) -> list[int]:
        """The deliveries the attempt this exchange belongs to carried (several for a
        batch request), whether it is their latest attempt or an earlier one."""
        head = self.head or self
        ids = set(head.deliveries.values_list("pk", flat=True))
        ids |= set(head.earlier_attempts.values_list("delivery_id", flat=True))
        return sorted(ids)
