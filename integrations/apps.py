from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import deletion
        from integrations.alerts.receivers import on_exchanges_recorded
        from integrations.delivery.signals import exchanges_recorded

        exchanges_recorded.connect(on_exchanges_recorded, dispatch_uid="alerts.auth_error")
        exchanges_recorded.connect(deletion.on_exchanges_recorded, dispatch_uid="deletion.refresh")
