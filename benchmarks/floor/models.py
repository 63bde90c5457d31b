"""The floor's one table. benchmarks/ingest.py creates it (and drops it when done)."""

from django.db import models

from benchmarks.floor.schema import TABLE


class RawEvent(models.Model):
    payload = models.JSONField()

    class Meta:
        managed = False  # no migration: the benchmark creates and drops the table itself
        db_table = TABLE

    def __str__(self) -> str:
        return f"raw event {self.pk}"
