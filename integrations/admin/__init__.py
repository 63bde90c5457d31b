"""The Django admin: configuration is edited here, traffic is audited here."""

from integrations.admin import config, delivery_log

__all__ = ["config", "delivery_log"]
