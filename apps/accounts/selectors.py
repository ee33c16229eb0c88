from django.db.models import QuerySet

from apps.accounts.models import ApiToken, Grant, Team, User


def environment_list() -> QuerySet:
    """Every environment, in promotion order (what a token may be limited to).

    The model is reached through ApiToken's field: accounts sits below the environments
    app and imports nothing of it.
    """
    return ApiToken._meta.get_field("environments").related_model.objects.all()


def environments_by_slug(*, slugs: list[str]) -> tuple[list, list[str]]:
    """The environments named by `slugs`, in that order, and the slugs that name none."""
    found = {env.slug: env for env in environment_list().filter(slug__in=slugs)}
    return [found[slug] for slug in slugs if slug in found], [
        slug for slug in slugs if slug not in found
    ]


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
