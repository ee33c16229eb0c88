from django.db.models import QuerySet

from apps.accounts.models import ApiToken, Grant, Team, User


def token_list(*, user: User) -> QuerySet[ApiToken]:
    """The user's own API tokens, newest first (revoked and expired ones too)."""
    return ApiToken.objects.filter(user=user).prefetch_related("environments")


def token_get(*, user: User, token_id: int) -> ApiToken | None:
    """One of the user's own tokens, or None (another user's token is not found)."""
    return token_list(user=user).filter(pk=token_id).select_related("user").first()


def team_list(*, user: User) -> QuerySet[Team]:
    """The teams the user is a member of, with the services they own."""
    return Team.objects.filter(memberships__user=user).prefetch_related("services")


def grant_list(*, user: User) -> QuerySet[Grant]:
    """The grants of the user's teams, by environment: what they may view and run where."""
    return (
        Grant.objects.filter(team__memberships__user=user)
        .select_related("team", "service", "environment")
        .order_by("environment__order", "service__name", "right", "team__name")
    )
