"""The console's models: configuration (workspaces, sources, integrations and their rules),
traffic (events, deliveries and the delivery log), alerts and rejected inbound calls."""

from integrations.models.alerts import AlertIncident, AlertRule
from integrations.models.deliveries import Delivery, DeliveryAttempt, DeliveryQuerySet
from integrations.models.events import Event, GroupProfile, SeenEvent, UserProfile
from integrations.models.integrations import EventRule, Integration, PropertyRule
from integrations.models.rejections import RejectedCall
from integrations.models.secret_stamp import SecretChangeStamp
from integrations.models.sources import (
    Source,
    new_webhook_secret,
    new_webhook_token,
    new_write_key,
)
from integrations.models.workspaces import Workspace, WorkspaceMembership, WorkspaceQuerySet

__all__ = [
    "AlertIncident",
    "AlertRule",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryQuerySet",
    "Event",
    "EventRule",
    "GroupProfile",
    "Integration",
    "PropertyRule",
    "RejectedCall",
    "SecretChangeStamp",
    "SeenEvent",
    "Source",
    "UserProfile",
    "Workspace",
    "WorkspaceMembership",
    "WorkspaceQuerySet",
    "new_webhook_secret",
    "new_webhook_token",
    "new_write_key",
]
