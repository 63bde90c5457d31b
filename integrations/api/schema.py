"""The API's OpenAPI schema (drf-spectacular): every operation documents the error answers
it can give, in the API's one error shape (``integrations.api.errors``)."""

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """An error answer: ``{"code": ..., "message": ...}``; validation errors (400, code
    ``invalid``) also carry ``errors``, the messages of each field."""

    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, not_found.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    # A declared field leaves the class (DRF's metaclass moves it into ``_declared_fields``),
    # so it does not hide ``Serializer.errors``, as the stubs take it to.
    errors = serializers.JSONField(  # type: ignore[assignment]
        required=False, help_text="Validation errors: each field's messages (code invalid)."
    )


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


CONFLICT = error("Not possible in the current state (see the message).")

# Statuses any operation of the API can answer, with why.
COMMON_ERRORS = {
    "400": "The request is invalid: a field (see errors), a query parameter (pagination, "
    "filters) or the URL.",
    "401": "No valid credentials (token or session).",
    "403": "Your role does not allow this.",
}
NOT_FOUND = "No such object, or not in a workspace of yours."
UNSUPPORTED_MEDIA_TYPE = "The body is not JSON, form data or multipart."


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(COMMON_ERRORS)
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        if self.method in ("POST", "PUT", "PATCH"):
            errors["415"] = UNSUPPORTED_MEDIA_TYPE
        for status, description in errors.items():
            if status not in responses:
                responses[status] = self._get_response_for_code(
                    error(description), status, direction=direction
                )
        return responses
