from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, QuerySet

from apps.accounts.models import Team
from apps.accounts.permissions import mine_filter, service_filter
from apps.catalog.constants import ActionKind
from apps.catalog.models import Action, Service


def service_list(*, user) -> QuerySet[Service]:
    """Services the user may see, with their actions and each action's environments."""
    environments = Action.environments.field.related_model.objects.defer("inventory")
    return (
        Service.objects.filter(service_filter(user))
        .select_related("team")
        .prefetch_related(
            Prefetch(
                "actions",
                queryset=Action.objects.select_related("playbook_version").prefetch_related(
                    Prefetch("environments", queryset=environments)
                ),
            )
        )
    )


def with_buttons(services: QuerySet[Service]) -> QuerySet[Service]:
    """`services` with what the catalog's buttons read of their actions, and no more: no
    playbook version, form or description, and each action's environments by id only
    (compared with the page's own environments, never shown)."""
    environments = Action.environments.field.related_model.objects.only("pk")
    actions = Action.objects.only(
        "service", "slug", "label", "kind", "position", "version_field"
    ).prefetch_related(Prefetch("environments", queryset=environments))
    return services.prefetch_related(None).prefetch_related(Prefetch("actions", queryset=actions))


def service_search(
    *, user, text: str = "", team: Team | None = None, environment=None, mine: bool = False
) -> QuerySet[Service]:
    """The services `user` may see (`service_list`), narrowed to those whose name, slug or
    description holds `text` (any case), those `team` owns, those the user may see on
    `environment`, and the user's own (`mine_filter`: their teams' services and those
    they may run)."""
    services = service_list(user=user)
    if text:
        services = services.filter(
            Q(name__icontains=text) | Q(slug__icontains=text) | Q(description__icontains=text)
        )
    if team is not None:
        services = services.filter(team=team)
    if environment is not None:
        services = services.filter(service_filter(user, environment=environment))
    if mine:
        services = services.filter(mine_filter(user))
    return services


@dataclass
class TeamGroup:
    """The services of one team (None: of no team), as the catalog lists them."""

    team: Team | None
    mine: bool  # one of the user's teams
    services: list = field(default_factory=list)


def service_page(*, user, services: QuerySet[Service], number, size: int):
    """One page of `services` in the order `services_by_team` lists them (the user's own
    teams first), read whole (actions and their environments) for that page only: the
    other services cost one light row each. Returns (the page, its TeamGroups)."""
    own = _own_teams(user)
    # The order of the whole list from plain rows (pk, team, its name), not model objects:
    # two hundred services cost a few milliseconds, not a few dozen.
    teams: dict[int | None, tuple] = {}
    for pk, team_id, team_name in services.prefetch_related(None).values_list(
        "pk", "team_id", "team__name"
    ):
        teams.setdefault(team_id, (_team_order(team_id, team_name, own), []))[1].append(pk)
    ordered = [pk for _, pks in sorted(teams.values(), key=lambda t: t[0]) for pk in pks]
    page = Paginator(ordered, size).get_page(number)
    full = services.filter(pk__in=list(page.object_list)).in_bulk()
    shown = [full[pk] for pk in page.object_list]
    return page, services_by_team(user=user, services=shown, own=own)


def services_by_team(*, user, services, own: set | None = None) -> list[TeamGroup]:
    """`services` grouped by the team that owns them: the user's own teams first, then the
    others, by name; services without a team last. Each group keeps the services' order."""
    own = _own_teams(user) if own is None else own
    groups: dict[int | None, TeamGroup] = {}
    for service in services:
        group = groups.get(service.team_id)
        if group is None:
            group = groups[service.team_id] = TeamGroup(service.team, service.team_id in own)
        group.services.append(service)
    return sorted(
        groups.values(),
        key=lambda g: _team_order(g.team.pk if g.team else None, g.team and g.team.name, own),
    )


def _own_teams(user) -> set[int]:
    return set(Team.objects.filter(memberships__user=user).values_list("pk", flat=True))


def _team_order(team_id, team_name, own: set) -> tuple:
    """Where a team's group goes: the user's own teams, then the others, by name; no
    team last."""
    return (team_id is None, team_id not in own, (team_name or "").lower())


def action_get(*, service_slug: str, action_slug: str) -> Action | None:
    return (
        Action.objects.select_related("service", "playbook_version__source")
        .filter(service__slug=service_slug, slug=action_slug)
        .first()
    )


def verify_action(*, service: Service, environment) -> Action | None:
    """The service's verify action offered on the environment (e.g. a smoke test)."""
    return (
        service.actions.filter(kind=ActionKind.VERIFY, environments=environment)
        .order_by("position", "pk")
        .first()
    )


def deploy_action(*, service: Service, environment) -> Action | None:
    """The service's deploy action with a version field, offered on the environment."""
    return (
        service.actions.filter(kind=ActionKind.DEPLOY, environments=environment)
        .exclude(version_field="")
        .order_by("position", "pk")
        .first()
    )


def rollback_actions(*, service: Service, environment) -> list[Action]:
    """What can roll the service back on the environment, in the order it is offered: the
    deploy action (any earlier version), then the rollback actions (the version before)."""
    deploy = deploy_action(service=service, environment=environment)
    rollbacks = service.actions.filter(kind=ActionKind.ROLLBACK, environments=environment)
    return [a for a in (deploy, *rollbacks.order_by("position", "pk")) if a]
