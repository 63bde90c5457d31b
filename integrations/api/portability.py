"""Configuration export and import through the API (see ``integrations.portability``):
members export, CSMs and admins import."""

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import portability
from integrations.api.views import WorkspaceScopedMixin
from integrations.models import Integration

ImportResultSerializer = inline_serializer(
    "ImportResult",
    {
        "integrations": serializers.ListField(
            child=inline_serializer(
                "ImportedIntegration",
                {
                    "id": serializers.IntegerField(),
                    "name": serializers.CharField(),
                    "kind": serializers.CharField(),
                    "enabled": serializers.BooleanField(),
                    "to_enter": serializers.ListField(child=serializers.CharField()),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)


class ExportView(WorkspaceScopedMixin, GenericAPIView):
    serializer_class = portability.ExportDocumentSerializer
    pagination_class = None

    def integrations(self) -> Any:
        return Integration.objects.filter(workspace=self.workspace)

    def get(self, request: Request, **kwargs: Any) -> Response:
        document = portability.export_document(portability.exportable(self.integrations()))
        return Response(document)


@extend_schema_view(get=extend_schema(operation_id="integrations_export"))
class WorkspaceExportView(ExportView):
    """Every integration of the workspace as an export document (no secrets)."""


@extend_schema_view(get=extend_schema(operation_id="integration_export"))
class IntegrationExportView(ExportView):
    """One integration as an export document (no secrets)."""

    def integrations(self) -> Any:
        found = super().integrations().filter(pk=self.kwargs["pk"])
        get_object_or_404(found)
        return found


class ImportView(WorkspaceScopedMixin, GenericAPIView):
    """Create the integrations of an export document in this workspace, all or none.
    Secrets are entered afterwards: an integration that needs one comes in disabled, and
    the answer says what to enter."""

    serializer_class = portability.ExportDocumentSerializer

    @extend_schema(operation_id="integrations_import", responses={201: ImportResultSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        imported = portability.import_document(self.workspace, request.data)
        body = {
            "integrations": [
                {
                    "id": item.integration.pk,
                    "name": item.integration.name,
                    "kind": item.integration.kind,
                    "enabled": item.integration.enabled,
                    "to_enter": item.to_enter,
                    "message": item.message,
                }
                for item in imported
            ]
        }
        return Response(body, status=status.HTTP_201_CREATED)
