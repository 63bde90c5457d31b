"""``POST /api/v1/workspaces/<slug>/integrations/<id>/test-connection/``: send the
integration's connection test now and answer with the result (nothing is saved)."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.views import WorkspaceScopedMixin
from integrations.delivery.connection_test import ConnectionStatus, check_connection
from integrations.models import Integration


class ConnectionTestResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ConnectionStatus.choices)
    message = serializers.CharField(help_text="What was sent and what came back.")
    note = serializers.CharField(help_text="What a success does not prove, if anything.")
    method = serializers.CharField()
    url = serializers.CharField(help_text="Secrets redacted.")
    http_status = serializers.IntegerField(allow_null=True)
    response = serializers.CharField(help_text="The start of the answer, secrets redacted.")
    duration_ms = serializers.IntegerField(allow_null=True)


class IntegrationConnectionTestView(WorkspaceScopedMixin, GenericAPIView):
    """Test connection: the vendor's cheapest authenticated request with the saved
    settings (Customer.io's account region, ChartMogul's ping or a ``{}`` to its webhook
    URL, an empty Segment batch). CSMs and admins of the workspace; a failure is a 200
    with ``status: failed``, since the test itself worked."""

    queryset = Integration.objects.none()  # the model, for the schema
    serializer_class = ConnectionTestResultSerializer

    def get_queryset(self) -> QuerySet[Integration]:
        return Integration.objects.filter(workspace=self.workspace)

    @extend_schema(request=None, responses=ConnectionTestResultSerializer)
    def post(self, request: Request, **kwargs: Any) -> Response:
        result = check_connection(self.get_object())
        return Response(ConnectionTestResultSerializer(result.as_dict()).data)
