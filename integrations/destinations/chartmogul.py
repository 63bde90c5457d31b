"""ChartMogul: customers, contacts and custom attributes through the REST API v1."""

from integrations.destinations.base import Destination, SettingField
from integrations.destinations.registry import register

CREATE_COMPANY_WHEN = (
    ("user_created", "The email or user id is created"),
    ("user_added_to_company", "A user is added to a company"),
)


@register
class ChartMogul(Destination):
    kind = "chartmogul"
    label = "ChartMogul"
    segment_names = ("ChartMogul",)
    supported_types = frozenset({"identify", "track", "group"})
    settings_schema = (
        SettingField(
            "api_key",
            "API key",
            help_text="ChartMogul > Profile > API keys (a key with write access).",
            required=True,
            secret=True,
        ),
        SettingField(
            "data_source_uuid",
            "Data source UUID",
            help_text="The ds_… uuid of the ChartMogul data source customers are created in.",
            required=True,
        ),
        SettingField(
            "create_company_when",
            "Create a company in ChartMogul when",
            type="choice",
            choices=CREATE_COMPANY_WHEN,
            default="user_added_to_company",
        ),
    )
