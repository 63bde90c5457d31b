"""The Django admin: configuration is edited here, traffic is audited here, each user
seeing only their workspaces (see ``scoping``)."""

from integrations.admin import config, delivery_log, members, sources, tokens

__all__ = ["config", "delivery_log", "members", "sources", "tokens"]
