"""The Django admin: configuration is edited here, traffic is audited here, each user
seeing only their workspaces (see ``scoping``)."""

from integrations.admin import (
    alerts,
    config,
    deletions,
    delivery_log,
    members,
    rejections,
    sources,
    tokens,
)

__all__ = [
    "alerts",
    "config",
    "deletions",
    "delivery_log",
    "members",
    "rejections",
    "sources",
    "tokens",
]
