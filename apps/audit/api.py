"""GET /api/v1/audit/: the audit log, with the review pages' filters and keyset pages."""

from urllib.parse import urlencode

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from apps.audit import selectors
from apps.audit.chain import canonical_time
from apps.audit.constants import READ_LOG, Via
from apps.audit.forms import AuditFilterForm, CursorForm
from apps.audit.services import audit_record, audit_search


class AuditEventSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(source="pk")
    created_at = serializers.SerializerMethodField()
    actor_id = serializers.IntegerField(allow_null=True)
    actor_name = serializers.CharField()
    via = serializers.CharField()
    ip = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    verb = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    service = serializers.CharField()
    environment = serializers.CharField()
    details = serializers.JSONField()
    outcome = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()
    run = serializers.SerializerMethodField()

    def get_created_at(self, event) -> str:
        return canonical_time(event.created_at)

    def get_run(self, event) -> str | None:
        return f"/api/v1/runs/{event.run_id}/" if event.run_id else None


class AuditPageSerializer(serializers.Serializer):
    results = AuditEventSerializer(many=True)
    newer = serializers.CharField(allow_null=True, help_text="URL of the newer rows.")
    older = serializers.CharField(allow_null=True, help_text="URL of the older rows.")


class AuditErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


def _reader(request) -> None:
    if not request.user.has_perm(READ_LOG):
        raise PermissionDenied("Only auditors and Ops read the audit log.")


FILTER_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=str(field.help_text or field.label or ""))
    for name, field in AuditFilterForm.base_fields.items()
] + [
    OpenApiParameter("before", OpenApiTypes.INT, description="Rows older than this sequence."),
    OpenApiParameter("after", OpenApiTypes.INT, description="Rows newer than this sequence."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Rows per page (1-500, default 50)."),
]


@extend_schema(
    operation_id="audit_list",
    parameters=FILTER_PARAMETERS,
    responses={200: AuditPageSerializer, 400: AuditErrorSerializer, 403: AuditErrorSerializer},
)
@api_view(["GET"])
def audit_list(request):
    """Audit rows, newest first, filtered; follow `older` / `newer` for the next page."""
    _reader(request)
    form, cursor = AuditFilterForm(request.query_params), CursorForm(request.query_params)
    if not (form.is_valid() and cursor.is_valid()):
        errors = {**form.errors.get_json_data(), **cursor.errors.get_json_data()}
        return Response(
            {
                "detail": "Invalid filter.",
                "errors": {
                    name: [e["message"] for e in messages] for name, messages in errors.items()
                },
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    size = cursor.cleaned_data["limit"] or selectors.PAGE_SIZE
    page = audit_search(
        form=form, cursor=cursor, actor=request.user, via=Via.API, request=request, size=size
    )
    raw = form.raw()

    def link(**cursor_value) -> str:
        query = {**raw, **({"limit": size} if cursor.cleaned_data["limit"] else {}), **cursor_value}
        return request.build_absolute_uri(f"{request.path}?{urlencode(query)}")

    return Response(
        {
            "results": AuditEventSerializer(page.events, many=True).data,
            "newer": link(after=page.newer) if page.newer else None,
            "older": link(before=page.older) if page.older else None,
        }
    )


@extend_schema(
    responses={200: AuditEventSerializer, 403: AuditErrorSerializer, 404: AuditErrorSerializer},
    operation_id="audit_retrieve",
)
@api_view(["GET"])
def audit_detail(request, event_id: int):
    """One audit row, in full."""
    _reader(request)
    event = selectors.audit_event_get(event_id=event_id)
    if event is None:
        raise NotFound("No such audit row.")
    audit_record(
        actor=request.user,
        via=Via.API,
        verb="audit.view",
        object_type="audit.auditevent",
        object_id=str(event.pk),
        object_repr=f"#{event.pk} {event.verb}",
        request=request,
    )
    return Response(AuditEventSerializer(event).data)


urlpatterns = [
    path("audit/", audit_list, name="api-audit-list"),
    path("audit/<int:event_id>/", audit_detail, name="api-audit-detail"),
]
