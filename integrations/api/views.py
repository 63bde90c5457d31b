"""Configuration API: workspaces and, nested under a workspace's slug, its sources,
integrations, events and deliveries."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import cached_property
from typing import Any, cast

from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from integrations import catalog, samples
from integrations.api import serializers
from integrations.api.errors import APIError
from integrations.api.permissions import WorkspaceCreatePermission, WorkspaceRolePermission
from integrations.api.schema import CONFLICT
from integrations.delivery import operations, tester
from integrations.models import Delivery, Event, Integration, Source, Workspace, WorkspaceMembership
from integrations.sources.segment_spec import MessageError

# The largest id the database holds (bigint).
MAX_ID = 2**63 - 1


def is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 19 and 0 < int(value) <= MAX_ID


class WorkspaceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Workspaces the user belongs to (all of them for superusers). Superusers, and staff
    users with the ``integrations.add_workspace`` permission, create workspaces; the
    creator of a workspace becomes its admin."""

    serializer_class = serializers.WorkspaceSerializer
    lookup_field = "slug"
    permission_classes = [IsAuthenticated, WorkspaceCreatePermission]

    def get_queryset(self) -> QuerySet[Workspace]:
        return Workspace.objects.for_user(self.request.user).distinct()

    @transaction.atomic
    def perform_create(self, serializer: BaseSerializer) -> None:
        user = self.request.user
        if not user.is_authenticated:  # the permission classes let only users in
            raise NotAuthenticated
        workspace = serializer.save()
        WorkspaceMembership.objects.create(
            user=user, workspace=workspace, role=WorkspaceMembership.Role.ADMIN
        )


class WorkspaceScopedMixin(APIView):
    """For views under ``/workspaces/<slug>/``: the workspace, if the user may see it.

    Listed first among the bases of a generic view or viewset; an ``APIView`` itself so that
    it shares the view's attributes (``request``, ``kwargs``, ``permission_classes``)."""

    permission_classes = [IsAuthenticated, WorkspaceRolePermission]

    @cached_property
    def workspace(self) -> Workspace:
        return get_object_or_404(
            Workspace.objects.for_user(self.request.user).distinct(),
            slug=self.kwargs["workspace_slug"],
        )


@extend_schema_view(
    create=extend_schema(responses={201: serializers.MemberSerializer, 409: CONFLICT}),
    update=extend_schema(
        request=serializers.MemberRoleSerializer,
        responses={200: serializers.MemberSerializer, 409: CONFLICT},
    ),
    partial_update=extend_schema(
        request=serializers.MemberRoleSerializer,
        responses={200: serializers.MemberSerializer, 409: CONFLICT},
    ),
    destroy=extend_schema(responses={204: None, 409: CONFLICT}),
)
class MemberViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    """The workspace's members, ``{username, role}``, by username. Members read; the
    workspace's admins (and superusers) add members, change roles and remove members. A
    workspace keeps at least one admin: demoting or removing the last one is a 409, and
    so is adding someone who is a member already."""

    queryset = WorkspaceMembership.objects.none()  # the model, for the schema
    serializer_class = serializers.MemberSerializer
    write_roles = (WorkspaceMembership.Role.ADMIN,)
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet[WorkspaceMembership]:
        return (
            WorkspaceMembership.objects.filter(workspace=self.workspace)
            .select_related("user")
            .order_by("user__username")
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "workspace": self.workspace}

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save(workspace=self.workspace)

    @transaction.atomic
    def perform_update(self, serializer: BaseSerializer) -> None:
        # An update's serializer always holds the instance DRF fetched.
        membership = cast(WorkspaceMembership, serializer.instance)
        role = serializer.validated_data.get("role", membership.role)
        if role != WorkspaceMembership.Role.ADMIN:
            self._keep_an_admin(removed=membership)
        serializer.save()

    @transaction.atomic
    def perform_destroy(self, instance: WorkspaceMembership) -> None:
        self._keep_an_admin(removed=instance)
        instance.delete()

    def _keep_an_admin(self, removed: WorkspaceMembership) -> None:
        if not WorkspaceMembership.keeps_an_admin(self.workspace.pk, removed=[removed.pk]):
            raise APIError(
                status.HTTP_409_CONFLICT, "last_admin", WorkspaceMembership.LAST_ADMIN_MESSAGE
            )


class CatalogView(WorkspaceScopedMixin, GenericAPIView):
    """Event names to toggle and rename: the ones the workspace's sources are known to
    send, and every name seen in its traffic, with counts and last-seen times."""

    serializer_class = serializers.CatalogEntrySerializer
    pagination_class = None

    @extend_schema(responses=serializers.CatalogEntrySerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        entries = catalog.catalog(self.workspace)
        return Response(self.get_serializer(entries, many=True).data)


@extend_schema_view(create=extend_schema(responses={201: serializers.SourceWithSecretSerializer}))
class SourceViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    """A workspace's sources. The webhook secret is write-only, except in the answers to
    create and regenerate-keys, which show it once."""

    queryset = Source.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = serializers.SourceSerializer

    def get_queryset(self) -> QuerySet[Source]:
        return Source.objects.filter(workspace=self.workspace)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = serializer.save(workspace=self.workspace)
        # The one answer, with regenerate-keys', that shows the webhook secret.
        shown = serializers.SourceWithSecretSerializer(
            source, context=self.get_serializer_context()
        )
        return Response(shown.data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.SourceWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="regenerate-keys")
    def regenerate_keys(self, request: Request, **kwargs: Any) -> Response:
        """Replace the write key, webhook URL and webhook secret; the old ones stop working."""
        source = self.get_object()
        source.regenerate_keys()
        context = self.get_serializer_context()
        return Response(serializers.SourceWithSecretSerializer(source, context=context).data)


class IntegrationViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    queryset = Integration.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = serializers.IntegrationSerializer

    def get_queryset(self) -> QuerySet[Integration]:
        return Integration.objects.filter(workspace=self.workspace).prefetch_related(
            "event_rules", "property_rules"
        )

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save(workspace=self.workspace)

    def _time_range(self, request: Request) -> dict[str, Any]:
        serializer = serializers.TimeRangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=serializers.TimeRangeSerializer, responses={202: dict, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def recover(self, request: Request, **kwargs: Any) -> Response:
        """Retry every failed delivery of this integration created in the range (manual
        attempts, in the background)."""
        window = self._time_range(request)
        with operation_errors():
            count = operations.recover(self.get_object(), window["since"], window["until"])
        return Response({"deliveries": count}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=serializers.TimeRangeSerializer, responses={202: dict})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, **kwargs: Any) -> Response:
        """Send the workspace's events received in the range to this integration again
        (a re-sync); the deliveries are made in the background, with origin ``replay``."""
        integration = self.get_object()
        window = self._time_range(request)
        started = operations.start_replay(integration, window["since"], window["until"])
        return Response(
            {"events": started.events, "task": started.task_id}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=serializers.PauseSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, **kwargs: Any) -> Response:
        """Hold deliveries: they wait, nothing is dropped. The ``reason`` (optional) goes
        into the audit trail and on the integration's admin page."""
        integration = self.get_object()
        serializer = serializers.PauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operations.pause(integration, serializer.validated_data["reason"])
        return Response(self.get_serializer(integration).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, **kwargs: Any) -> Response:
        """Deliver again, starting with what waited."""
        integration = self.get_object()
        operations.resume(integration)
        return Response(self.get_serializer(integration).data)

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: dict},
        description="The sample events the tester offers.",
    )
    @extend_schema(methods=["POST"], request=serializers.EventTestSerializer, responses=dict)
    @action(detail=True, methods=["get", "post"])
    def test(self, request: Request, **kwargs: Any) -> Response:
        """The event tester: the exact requests this integration would send for an event
        (nothing sent), or, with ``send``, a real test delivery and the vendor's answer."""
        integration = self.get_object()
        if request.method == "GET":
            return Response({"samples": samples.sample_names()})
        serializer = serializers.EventTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message, send = serializer.validated_data["message"], serializer.validated_data["send"]
        try:
            result = asdict(tester.preview(integration, message))
            if send and result["routed"]:
                delivery = tester.send(integration, message)
                result["delivery"] = serializers.DeliveryDetailSerializer(delivery).data
        except MessageError as exc:
            raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
        result["sent"] = "delivery" in result
        return Response(result)


@contextmanager
def operation_errors() -> Iterator[None]:
    try:
        yield
    except operations.OperationRefused as exc:
        raise APIError(status.HTTP_409_CONFLICT, "not_possible_now", str(exc)) from exc


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("message_id", str),
            OpenApiParameter("user_id", str),
            OpenApiParameter("event", str),
            OpenApiParameter("type", str),
        ]
    )
)
class EventViewSet(WorkspaceScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Event.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = serializers.EventSerializer
    filters = {"message_id": "message_id", "user_id": "user_id", "event": "event", "type": "type"}

    def get_queryset(self) -> QuerySet[Event]:
        queryset = Event.objects.filter(workspace=self.workspace)
        return _filtered(queryset, self.request, self.filters)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("message_id", str),
            OpenApiParameter("integration", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
            OpenApiParameter("status", str),
        ]
    )
)
class DeliveryViewSet(WorkspaceScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Delivery.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = serializers.DeliverySerializer
    filters = {
        "message_id": "event__message_id",
        "integration": "integration_id",
        "status": "status",
    }
    numeric_filters = frozenset({"integration"})

    def get_queryset(self) -> QuerySet[Delivery]:
        queryset = Delivery.objects.filter(integration__workspace=self.workspace).select_related(
            "event"
        )
        return _filtered(queryset, self.request, self.filters, self.numeric_filters)

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "retrieve":
            return serializers.DeliveryDetailSerializer
        return serializers.DeliverySerializer

    @extend_schema(request=None, responses={202: dict, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, **kwargs: Any) -> Response:
        """One manual attempt, in the background; the automatic schedule is unchanged."""
        delivery = self.get_object()
        with operation_errors():
            operations.retry_delivery(delivery)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


def _filtered(
    queryset: QuerySet,
    request: Request,
    filters: dict[str, str],
    numeric: frozenset[str] = frozenset(),
) -> QuerySet:
    """Apply the query parameters present in ``filters`` (param -> lookup); the ``numeric``
    ones must be integers (ids), the others are matched as strings (``message_id``...)."""
    lookups = {}
    for param, lookup in filters.items():
        value = request.query_params.get(param)
        if value is None or value == "":
            continue
        if param in numeric and not is_id(value):
            raise APIError(
                status.HTTP_400_BAD_REQUEST, "invalid_filter", f"{param} must be an id (a number)"
            )
        lookups[lookup] = value
    return queryset.filter(**lookups)
