"""Deletion requests in the configuration API: ``/api/v1/workspaces/<slug>/deletion-requests/``."""

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import deletion
from integrations.api.errors import APIError
from integrations.api.strict import ModelSerializer
from integrations.api.views import WorkspaceScopedMixin
from integrations.models import DeletionRequest, DeletionTarget
from integrations.sources.segment_spec import MAX_ID_LENGTH


class DeletionTargetSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeletionTarget
        fields = ["integration", "name", "kind", "status", "detail", "updated_at"]
        read_only_fields = fields


class DeletionRequestSerializer(ModelSerializer):
    """A request to delete (``delete``) or delete and suppress (``suppress``) a user's data
    at every integration that can; ``targets`` say how far each one got."""

    user_id = serializers.CharField(
        max_length=MAX_ID_LENGTH, help_text="The user's id (the messages' userId)."
    )
    requested_by = serializers.CharField(
        source="requested_by_name",
        read_only=True,
        help_text="Who asked (empty for a Segment notice).",
    )
    targets = DeletionTargetSerializer(many=True, read_only=True)

    class Meta:
        model = DeletionRequest
        fields = [
            "id",
            "user_id",
            "action",
            "via",
            "requested_by",
            "source",
            "message_id",
            "state",
            "created_at",
            "settled_at",
            "targets",
        ]
        read_only_fields = [
            "id",
            "via",
            "source",
            "message_id",
            "state",
            "created_at",
            "settled_at",
        ]


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("user_id", str), OpenApiParameter("state", str)]
    )
)
class DeletionRequestViewSet(
    WorkspaceScopedMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Delete a user's data at the vendors: ``POST {"user_id": "u1", "action": "delete" |
    "suppress"}``. The request is dispatched at once to every enabled integration that
    takes it (Customer.io: person delete or suppress; ChartMogul REST mode: the contact
    deleted; ChartMogul's Segment source: skipped, it takes none), delivered and retried
    like any event, and recorded in the audit trail. ``state`` and each target's
    ``status`` follow the deliveries. Members read; admins and CSMs ask."""

    queryset = DeletionRequest.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = DeletionRequestSerializer
    filters = ("user_id", "state")

    def get_queryset(self) -> QuerySet[DeletionRequest]:
        wanted = {
            name: value for name in self.filters if (value := self.request.query_params.get(name))
        }
        return (
            DeletionRequest.objects.filter(workspace=self.workspace, **wanted)
            .select_related("source")
            .prefetch_related("targets")
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        items = list(page if page is not None else self.get_queryset())
        deletion.refresh(items)
        data = self.get_serializer(items, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        deletion.refresh([item])
        return Response(self.get_serializer(item).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = deletion.deletion_message(
            serializer.validated_data["action"],
            serializer.validated_data["user_id"],
            received_at=timezone.now(),
        )
        created = deletion.submit(
            self.workspace, message, via=DeletionRequest.Via.API, requested_by=request.user
        )
        if created is None:  # a fresh messageId is never taken: a conflict to report
            raise APIError(
                status.HTTP_409_CONFLICT, "duplicate", "This request was already accepted."
            )
        data = self.get_serializer(created).data
        return Response(data, status=status.HTTP_201_CREATED)
