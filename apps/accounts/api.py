"""Who the caller is (whoami) and each user's own API tokens."""

from django.core.exceptions import ValidationError
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from apps.accounts import selectors, services
from apps.accounts.authentication import SignedIn
from apps.accounts.constants import TokenScope
from apps.accounts.permissions import token_scope_refusal
from apps.audit.constants import Via


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    environments = serializers.SerializerMethodField()
    limited = serializers.BooleanField(
        help_text="Limited to `environments`; an empty list then means nowhere."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField(source="is_active")

    def get_environments(self, token) -> list[str]:
        return [env.slug for env in token.environments.all()]


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(help_text="Shown this once; only its hash is kept.")


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices), required=False
    )
    environments = serializers.ListField(child=serializers.SlugField(), required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_environments(self, slugs):
        found, missing = selectors.environments_by_slug(slugs=slugs)
        if missing:
            raise serializers.ValidationError(f"No environment {', '.join(map(repr, missing))}.")
        return found


class GrantSerializer(serializers.Serializer):
    team = serializers.CharField(source="team.slug")
    service = serializers.CharField(
        source="service.slug", allow_null=True, default=None, help_text="null: every service."
    )
    environment = serializers.CharField(source="environment.slug")
    right = serializers.CharField()


class WhoamiSerializer(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.CharField(source="display_name")
    role = serializers.CharField()
    teams = serializers.SerializerMethodField()
    grants = serializers.SerializerMethodField(
        help_text="What the user's teams may view or run where (a token narrows it)."
    )
    token = serializers.SerializerMethodField(help_text="The token asking, if one does.")

    def get_teams(self, user) -> list[str]:
        return [team.slug for team in selectors.team_list(user=user)]

    def get_grants(self, user) -> list[dict]:
        return GrantSerializer(selectors.grant_list(user=user), many=True).data

    def get_token(self, user) -> dict | None:
        token = getattr(user, "api_token", None)
        return TokenSerializer(token).data if token is not None else None


class TokenErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


@extend_schema(
    methods=["GET"], responses=TokenSerializer(many=True), description="Your API tokens."
)
@extend_schema(
    methods=["POST"],
    request=TokenCreateSerializer,
    responses={201: NewTokenSerializer, 400: TokenErrorSerializer},
    description="Create a token; its key is in this answer only.",
)
@api_view(["GET", "POST"])
@permission_classes([SignedIn])
def tokens(request):
    """Your API tokens; POST creates one (with no more scopes, environments or time than
    the token you use, if you use one)."""
    if request.method == "GET":
        if reason := token_scope_refusal(request.user, scope=TokenScope.READ):
            raise PermissionDenied(reason)
        tokens = selectors.token_list(user=request.user)
        return Response(TokenSerializer(tokens, many=True).data)
    data = TokenCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    try:
        token, key = services.token_create(
            user=request.user,
            name=values["name"],
            scopes=values.get("scopes"),
            environments=values.get("environments", []),
            expires_at=values.get("expires_at"),
            acting_user=request.user,
            acting_token=getattr(request.user, "api_token", None),
            via=Via.API,
            request=request,
        )
    except ValidationError as exc:
        return Response(
            {"detail": "The token was not created.", "errors": exc.message_dict},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return Response({**TokenSerializer(token).data, "key": key}, status=status.HTTP_201_CREATED)


@extend_schema(request=None, responses={200: TokenSerializer, 404: TokenErrorSerializer})
@api_view(["POST"])
@permission_classes([SignedIn])
def token_revoke(request, token_id: int):
    """Revoke one of your tokens (any of your tokens may revoke any other, or itself)."""
    token = selectors.token_get(user=request.user, token_id=token_id)
    if token is None:
        raise NotFound("No such token.")
    token = services.token_revoke(
        token=token, acting_user=request.user, via=Via.API, request=request
    )
    return Response(TokenSerializer(token).data)


@extend_schema(responses=WhoamiSerializer)
@api_view(["GET"])
@permission_classes([SignedIn])
def whoami(request):
    """Who the caller is: user, role, teams, grants and, with a token, the token itself
    (its scopes, environments, expiry). Any token may ask, whatever its scopes."""
    return Response(WhoamiSerializer(request.user).data)


urlpatterns = [
    path("whoami/", whoami, name="api-whoami"),
    path("tokens/", tokens, name="api-tokens"),
    path("tokens/<int:token_id>/revoke/", token_revoke, name="api-token-revoke"),
]
