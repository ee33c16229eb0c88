"""How API requests are authenticated (tokens) and what a token may be used for (scopes).

Kept apart from api.py: REST_FRAMEWORK settings import these classes while DRF loads.
"""

import datetime

from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.accounts.constants import TokenScope
from apps.accounts.models import ApiToken
from apps.accounts.permissions import token_scope_refusal
from apps.accounts.services import token_refused_record


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, looked up by the key's SHA-256.

    The user comes back with the token on it (`user.api_token`), so every permission
    question asked about that user is narrowed by the token's scopes and environments.
    """

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        try:
            # get(), not first(): the hash is unique, and a lookup by it needs no ORDER BY
            # (nor its compiling, on every API request).
            token = ApiToken.objects.select_related("user").get(key_hash=ApiToken.hash_key(key))
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.") from None
        if token.revoked_at is not None or token.is_expired:
            if token.revoked_at is not None:
                reason = "Invalid or revoked token."
            else:
                expired = token.expires_at.astimezone(datetime.UTC)
                reason = f"This token expired at {expired:%Y-%m-%d %H:%M} UTC."
            with transaction.atomic():
                token_refused_record(
                    token=token, reason=reason, request=getattr(self, "_request", None)
                )
            raise exceptions.AuthenticationFailed(reason)
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        user = token.user
        user.api_token = token
        return user, token


class ScopedAccess(BasePermission):
    """Signed in; with a token, `read` scope to read (GET) and `run` scope for the rest.

    The default for every endpoint (REST_FRAMEWORK's DEFAULT_PERMISSION_CLASSES). What
    the user may see or run is then each endpoint's question to apps.accounts.permissions.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        scope = TokenScope.READ if request.method in SAFE_METHODS else TokenScope.RUN
        if reason := token_scope_refusal(request.user, scope=scope):
            self.message = reason
            return False
        return True


class AlertsAccess(BasePermission):
    """An API token with the `alerts` scope: what monitoring sends its alerts with."""

    message = "Send alerts with an API token that has the alerts scope."

    def has_permission(self, request, view) -> bool:
        token = getattr(request.user, "api_token", None)
        return bool(request.user and request.user.is_authenticated and token is not None
                    and token.has_scope(TokenScope.ALERTS))  # fmt: skip


class SignedIn(BasePermission):
    """Signed in, with a token of any scope: for managing one's own tokens, where a new
    token can never have more than the token that made it."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)
