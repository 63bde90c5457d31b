"""Keeping the profile store current as identify and group calls are accepted."""

from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from integrations.destinations.context import Profile
from integrations.destinations.values import EventData
from integrations.models import Event, GroupProfile, UserProfile


def _merged(rows: dict[str, Any], key: str, traits: Any) -> None:
    if isinstance(traits, dict) and traits:
        rows[key].traits = {**rows[key].traits, **traits}


def update(workspace_id: int, events: Sequence[Event]) -> None:
    """Merge the traits of identify and group calls into the store (in the caller's
    transaction; rows are locked, so concurrent requests merge rather than overwrite)."""
    identifies = [e for e in events if e.type == Event.Type.IDENTIFY and e.user_id]
    groups = [e for e in events if e.type == Event.Type.GROUP]
    if identifies or any(e.user_id for e in groups):
        user_ids = {e.user_id for e in identifies} | {e.user_id for e in groups if e.user_id}
        users = _load(UserProfile, workspace_id, "user_id", user_ids)
        for event in sorted(identifies + groups, key=lambda e: e.timestamp):
            if event.type == Event.Type.IDENTIFY:
                _merged(users, event.user_id, event.payload.get("traits"))
            elif event.user_id:
                users[event.user_id].group_id = event.group_id
        _save(UserProfile, users.values(), "user_id", ["traits", "group_id", "updated_at"])
    if groups:
        rows = _load(GroupProfile, workspace_id, "group_id", {e.group_id for e in groups})
        for event in sorted(groups, key=lambda e: e.timestamp):
            _merged(rows, event.group_id, event.payload.get("traits"))
        _save(GroupProfile, rows.values(), "group_id", ["traits", "updated_at"])


def _load(model: Any, workspace_id: int, key: str, values: set[str]) -> dict[str, Any]:
    existing = model.objects.select_for_update().filter(
        workspace_id=workspace_id, **{f"{key}__in": values}
    )
    rows = {getattr(row, key): row for row in existing}
    for value in values - rows.keys():
        rows[value] = model(workspace_id=workspace_id, **{key: value})
    return rows


def _save(model: Any, rows: Any, key: str, fields: list[str]) -> None:
    rows = list(rows)
    for row in rows:
        row.updated_at = timezone.now()
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["workspace", key],
        update_fields=fields,
    )


def lookup(
    workspace_id: int, events: Sequence[EventData]
) -> tuple[dict[str, Profile], dict[str, Any]]:
    """The profiles of these events' users and the traits of their groups."""
    user_ids = {e.user_id for e in events if e.user_id}
    profiles = {
        row.user_id: Profile(traits=row.traits, group_id=row.group_id)
        for row in UserProfile.objects.filter(workspace_id=workspace_id, user_id__in=user_ids)
    }
    group_ids = {e.group_id for e in events if e.group_id} | {
        p.group_id for p in profiles.values() if p.group_id
    }
    groups = dict(
        GroupProfile.objects.filter(workspace_id=workspace_id, group_id__in=group_ids).values_list(
            "group_id", "traits"
        )
    )
    return profiles, groups
