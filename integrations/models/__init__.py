"""The console's models, along an event's path: configuration (workspaces, sources,
integrations and their rules), then traffic: events, routing jobs, dispatches, deliveries
and the exchange log; alerts, rejected inbound calls and deletion requests."""

from integrations.models.alerts import AlertIncident, AlertRule
from integrations.models.deletions import DeletionRequest, DeletionTarget
from integrations.models.deliveries import (
    AttemptRecord,
    Delivery,
    DeliveryAttempt,
    DeliveryQuerySet,
    Dispatch,
    Origin,
    Outcome,
    Trigger,
)
from integrations.models.events import (
    Event,
    EventSearchEntry,
    GroupProfile,
    SeenEvent,
    UserProfile,
)
from integrations.models.exchanges import Exchange
from integrations.models.integrations import EventRule, Integration, PropertyRule
from integrations.models.rejections import RejectedCall
from integrations.models.routing import RoutingJob
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
    "AttemptRecord",
    "DeletionRequest",
    "DeletionTarget",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryQuerySet",
    "Dispatch",
    "Event",
    "EventRule",
    "EventSearchEntry",
    "Exchange",
    "GroupProfile",
    "Integration",
    "Origin",
    "Outcome",
    "PropertyRule",
    "RejectedCall",
    "RoutingJob",
    "SecretChangeStamp",
    "SeenEvent",
    "Source",
    "Trigger",
    "UserProfile",
    "Workspace",
    "WorkspaceMembership",
    "WorkspaceQuerySet",
    "new_webhook_secret",
    "new_webhook_token",
    "new_write_key",
]
