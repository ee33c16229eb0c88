"""What runs where: the version on each service and environment, what was verified
where, what may be promoted or rolled back, and drift. All read from the run history."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from apps.catalog.constants import ActionKind
from apps.catalog.models import Service
from apps.catalog.parameters import secret_names
from apps.catalog.selectors import deploy_action
from apps.environments.models import Environment
from apps.runs.constants import RunStatus
from apps.runs.models import Run

# Runs that change the version on an environment: deploys and rollbacks.
CHANGE_KINDS = (ActionKind.DEPLOY, ActionKind.ROLLBACK)
HISTORY_LENGTH = 20
# What the lists of versions never show of a run: read only when asked for.
_HEAVY = ("form", "inventory", "parameters", "host_summary", "progress", "credentials")
# What the catalog shows of the run that put the version there now: its link, the
# version, who and when (the other columns are many, with seven timestamps to decode).
_VERSION_NOW = ("service", "environment", "version", "requested_by_name", "finished_at")
# What what-runs-where shows of a run: its link, version, status, who and when, and what
# its kind badge names (the run it rolled back, the environment it was promoted from).
_SHOWN = (
    "service",
    "environment",
    "version",
    "status",
    "requested_by_name",
    "finished_at",
    "action_kind",
    "action_label",
    "rollback_of__version",
    "promoted_from__name",
)
# Before any run: "no change to another version before this one".
_DAWN = datetime(1970, 1, 1, tzinfo=UTC)


def _changes() -> Q:
    """Successful deploys and rollbacks that reported a version (dry runs never count)."""
    return Q(status=RunStatus.SUCCESSFUL, check_mode=False, action_kind__in=CHANGE_KINDS) & ~Q(
        version=""
    )


def _verifications() -> Q:
    return Q(status=RunStatus.SUCCESSFUL, check_mode=False, action_kind=ActionKind.VERIFY) & ~Q(
        version=""
    )


def _latest_per_pair(
    condition: Q, *, services=None, environments=None, order=("-finished_at", "-id")
) -> dict[tuple[int, int], int]:
    """The id of the first run by `order` matching `condition` on each (service,
    environment): one indexed lookup per pair, in one query over the services (a filter
    over every run matching `condition` would look up each of them instead)."""
    if services is not None:
        services = list(services)
        if not services:
            return {}
    if environments is None:
        environments = Environment.objects.all()
    env_ids = [env.pk for env in environments]
    rows = Service.objects.all()
    if services is not None:
        rows = rows.filter(pk__in=[getattr(s, "pk", s) for s in services])
    annotations = {
        f"env_{eid}": Subquery(
            Run.objects.filter(condition, service=OuterRef("pk"), environment_id=eid)
            .order_by(*order)
            .values("pk")[:1]
        )
        for eid in env_ids
    }
    found = {}
    for row in rows.annotate(**annotations).values("pk", *annotations):
        for eid in env_ids:
            if (run_id := row[f"env_{eid}"]) is not None:
                found[(row["pk"], eid)] = run_id
    return found


def current_versions(*, services=None, environments=None) -> dict[tuple[int, int], Run]:
    """The run that put the current version on each (service, environment): one row per
    pair, found by the (service, environment, finished_at) index. Only what the catalog
    shows of it is read (`_VERSION_NOW`): another column costs a query per run."""
    ids = _latest_per_pair(_changes(), services=services, environments=environments)
    runs = Run.objects.filter(pk__in=ids.values()).only(*_VERSION_NOW)
    return {(run.service_id, run.environment_id): run for run in runs}


def current_version(*, service, environment) -> Run | None:
    return (
        Run.objects.filter(_changes(), service=service, environment=environment)
        .order_by("-finished_at", "-id")
        .first()
    )


def last_runs(
    *, services=None, environments=None, lean: bool = False
) -> dict[tuple[int, int], Run]:
    """The latest run (not a dry run) of any action on each (service, environment).
    `lean`: only what what-runs-where shows of it (`_SHOWN`); another column then costs a
    query per run."""
    ids = _latest_per_pair(
        Q(check_mode=False), services=services, environments=environments, order=("-id",)
    )
    runs = Run.objects.filter(pk__in=ids.values())
    if lean:
        runs = runs.select_related("rollback_of", "promoted_from").only(*_SHOWN)
    else:
        runs = runs.select_related("service", "environment", "rollback_of", "promoted_from").defer(
            *_HEAVY
        )
    return {(run.service_id, run.environment_id): run for run in runs}


def previous_environment(environment: Environment) -> Environment | None:
    """The environment before `environment` in promotion order (test before qa...)."""
    return (
        Environment.objects.filter(order__lt=environment.order).order_by("-order", "-name").first()
    )


def previous_environments(environments) -> dict[int, Environment | None]:
    """`previous_environment` of each of `environments`, by id, from one query."""
    everywhere = list(Environment.objects.order_by("order", "name"))
    return {
        env.pk: next((e for e in reversed(everywhere) if e.order < env.order), None)
        for env in environments
    }


def next_environments(environment: Environment) -> list[Environment]:
    """The environments whose previous environment is `environment`."""
    return [
        env
        for env in Environment.objects.filter(order__gt=environment.order)
        if previous_environment(env) == environment
    ]


def verification(*, service, environment, version: str) -> Run | None:
    """The latest verify run that checked `version` on `environment` after a successful
    deploy of it there, or None: deployed and then verified is what promotion needs."""
    if not version:
        return None
    first_deploy = (
        Run.objects.filter(_changes(), service=service, environment=environment, version=version)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    if first_deploy is None:
        return None
    return (
        Run.objects.filter(
            _verifications(),
            service=service,
            environment=environment,
            version=version,
            started_at__gte=first_deploy,
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def was_deployed(*, service, environment, version: str) -> bool:
    return Run.objects.filter(
        _changes(), service=service, environment=environment, version=version
    ).exists()


def stay_verification(*, service, environment, version: str) -> Run | None:
    """The verification of `version` on `environment` during its stay there now: it runs
    there, and was verified since it was put there (neither rolled back nor replaced
    since). What Promote offers and the promotion rule needs, as Heroku promotes the
    build that is there."""
    current = current_version(service=service, environment=environment)
    if not version or current is None or current.version != version:
        return None
    if current.finished_at is None:  # a run written without its end: the history decides
        return verification(service=service, environment=environment, version=version)
    replaced = (
        Run.objects.filter(_changes(), service=service, environment=environment)
        .exclude(version=version)
        .filter(finished_at__lte=current.finished_at)
        .order_by("-finished_at", "-id")
        .values_list("finished_at", flat=True)
        .first()
    )
    stay = Run.objects.filter(_changes(), service=service, environment=environment, version=version)
    if replaced is not None:
        stay = stay.filter(finished_at__gt=replaced)
    began = stay.order_by("finished_at").values_list("finished_at", flat=True).first()
    return (
        Run.objects.filter(
            _verifications(),
            service=service,
            environment=environment,
            version=version,
            started_at__gte=began,
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def promotion_refusal(*, service, source: Environment, target: Environment, version: str) -> str:
    """Why `version` may not be promoted from `source` onto `target` now, in a person's
    words (one sentence, no full stop): it never ran there, it was rolled back or
    replaced there since its verification, or it was not verified since it was put
    there. Empty when it may."""
    if stay_verification(service=service, environment=source, version=version):
        return ""
    current = current_version(service=service, environment=source)
    replaced = current is not None and current.version != version
    if replaced and verification(service=service, environment=source, version=version):
        how = "rolled back" if current.rollback_of_id else "replaced"
        return (
            f"{service} {version} was {how} on {source} since its verification (run "
            f"#{current.pk} put {current.version} there), and {target} accepts only what "
            f"runs on {source} now, verified there: promote that once it is verified"
        )
    rule = (
        f"{service} {version} has not been verified on {source}, and {target} accepts only "
        "versions verified there first"
    )
    if was_deployed(service=service, environment=source, version=version):
        return (
            f"{rule}: it was deployed there but not verified since: run its verify action "
            f"on {source}"
        )
    return f"{rule}: deploy it to {source} and verify it there"


@dataclass(frozen=True)
class Candidate:
    """A version to promote onto an environment: what runs on the one before now,
    verified there since it was put there."""

    version: str
    source: Environment
    verified_by: Run


def promotion_candidate(
    *, service, environment, source: Environment | None = None
) -> Candidate | None:
    """What runs on the environment before `environment` now, when it was verified there
    since it was put there; never a version rolled back or replaced there since."""
    source = source or previous_environment(environment)
    if source is None:
        return None
    current = current_version(service=service, environment=source)
    if current is None:
        return None
    verified = stay_verification(service=service, environment=source, version=current.version)
    return Candidate(current.version, source, verified) if verified else None


def history(*, service, environment, limit: int = HISTORY_LENGTH) -> list[Run]:
    """Deploys and rollbacks (not dry runs) on the environment, newest first, any status."""
    return list(
        Run.objects.filter(
            service=service,
            environment=environment,
            check_mode=False,
            action_kind__in=CHANGE_KINDS,
        )
        .select_related("rollback_of", "promoted_from")
        .order_by("-id")[:limit]
    )


def rollback_targets(*, service, environment, current: Run | None) -> list[Run]:
    """Earlier successful versions on the environment, newest first, one run per version:
    never the current version (rolling back to it would change nothing), nor one that
    was itself rolled back (that would roll forward again)."""
    if current is None:
        return []
    rolled_back = set(
        Run.objects.filter(
            service=service,
            environment=environment,
            rollback_of__isnull=False,
            status=RunStatus.SUCCESSFUL,
        ).values_list("rollback_of_id", flat=True)
    )
    seen: set[str] = set()
    targets: dict[str, Run] = {}
    runs = (
        Run.objects.filter(_changes(), service=service, environment=environment)
        .filter(finished_at__lte=current.finished_at)
        .exclude(pk=current.pk)
        .exclude(version=current.version)
        .order_by("-finished_at", "-id")
    )
    for run in runs[:200]:
        # The latest stay of each version decides: one that was rolled back is not offered.
        if run.version not in seen and run.pk not in rolled_back:
            targets[run.version] = run
        seen.add(run.version)
    return list(targets.values())[:10]


def last_dry_run(*, service, environment, action=None) -> Run | None:
    runs = Run.objects.filter(service=service, environment=environment, check_mode=True)
    if action is not None:
        runs = runs.filter(action_slug=action.slug)
    return runs.order_by("-id").first()


@dataclass
class Cell:
    """One service on one environment."""

    environment: Environment
    current: Run | None = None
    last: Run | None = None
    previous: Environment | None = None
    drift: bool = False  # runs a version the environment before never verified
    verified_here: Run | None = None
    extra: dict = field(default_factory=dict)


def _verified_since(*, environment, since=None) -> QuerySet:
    """Verifications of the outer run's service and version on `environment` (an outer
    reference), latest first, that started at `since` or later; by default, since that
    version was first put there (what `verification` accepts)."""
    if since is None:
        # Relative to the verification itself: its service, environment and version.
        since = Subquery(
            Run.objects.filter(
                _changes(),
                service=OuterRef("service"),
                environment=OuterRef("environment"),
                version=OuterRef("version"),
            )
            .order_by("finished_at")
            .values("finished_at")[:1]
        )
    return Run.objects.filter(
        _verifications(),
        service=OuterRef("service"),
        environment=environment,
        version=OuterRef("version"),
        started_at__gte=since,
    ).order_by("-finished_at", "-id")


def matrix(*, services, environments, lean: bool = False) -> dict[int, list[Cell]]:
    """Per service id, one Cell per environment, in promotion order. A bounded number of
    queries whatever the number of services: what runs now and the last run per pair,
    then, on the runs that put the current versions, whether each was verified here and
    on the environment before (the questions `verification` answers, as subqueries).
    `lean`: of each run, only what what-runs-where shows (`_SHOWN`; of the verifications,
    when they started): the API and the service page read them whole."""
    services = list(services)
    environments = list(environments)
    current_ids = _latest_per_pair(_changes(), services=services, environments=environments)
    last = last_runs(services=services, environments=environments, lean=lean)
    previous = previous_environments(environments)
    # The environment before the outer run's, as a column (NULL for the first one).
    previous_of = Case(
        *[When(environment_id=eid, then=Value(env.pk)) for eid, env in previous.items() if env],
        default=Value(None),
        output_field=IntegerField(),
    )
    current = Run.objects.filter(pk__in=current_ids.values()).select_related(
        "rollback_of", "promoted_from"
    )
    current = (current.only(*_SHOWN) if lean else current.defer(*_HEAVY)).annotate(
        verified_here_id=Subquery(
            _verified_since(environment=OuterRef("environment")).values("pk")[:1]
        ),
        previous_env=previous_of,
        verified_before=Exists(_verified_since(environment=OuterRef("previous_env"))),
    )
    current = {(run.service_id, run.environment_id): run for run in current}
    verified = (Run.objects.only("started_at") if lean else Run.objects.defer(*_HEAVY)).in_bulk(
        [run.verified_here_id for run in current.values() if run.verified_here_id]
    )
    rows: dict[int, list[Cell]] = {}
    for service in services:
        cells = []
        for env in environments:
            run = current.get((service.pk, env.pk))
            cell = Cell(env, run, last.get((service.pk, env.pk)), previous[env.pk])
            if run is not None:
                here = verified.get(run.verified_here_id)
                # Only a verification of what runs now: not of an earlier stay of the version.
                if here is not None and here.started_at >= run.finished_at:
                    cell.verified_here = here
                if cell.previous is not None:
                    cell.drift = not run.verified_before
            cells.append(cell)
        rows[service.pk] = cells
    return rows


def promotion_candidates(*, services, environments) -> dict[tuple[int, int], Candidate]:
    """`promotion_candidate` of each service onto each of `environments`, keyed by
    (service id, environment id), in a bounded number of queries: the current version on
    each environment before, the start of its stay there (after the last change to
    another version) and its latest verification since, as subqueries."""
    sources = previous_environments(environments)
    source_envs = {src.pk: src for src in sources.values() if src is not None}
    if not source_envs:
        return {}
    ids = _latest_per_pair(_changes(), services=services, environments=source_envs.values())
    same_pair = Run.objects.filter(
        _changes(), service=OuterRef("service"), environment=OuterRef("environment")
    )
    replaced = (
        same_pair.exclude(version=OuterRef("version"))
        .filter(finished_at__lte=OuterRef("finished_at"))
        .order_by("-finished_at", "-id")
        .values("finished_at")[:1]
    )
    began = (
        same_pair.filter(
            version=OuterRef("version"),
            finished_at__gt=Coalesce(
                OuterRef("replaced_at"), Value(_DAWN), output_field=DateTimeField()
            ),
        )
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    runs = (
        Run.objects.filter(pk__in=ids.values())
        .only("service", "environment", "version", "finished_at")
        .annotate(replaced_at=Subquery(replaced))
        .annotate(stay_began=Subquery(began))
        .annotate(
            verified_id=Subquery(
                _verified_since(
                    environment=OuterRef("environment"), since=OuterRef("stay_began")
                ).values("pk")[:1]
            )
        )
    )
    # (service id, source environment id) -> (the version there, its verification's id)
    verified: dict[tuple[int, int], tuple[str, int | None]] = {}
    fallbacks: dict[tuple[int, int], Run] = {}
    for run in runs:
        key = (run.service_id, run.environment_id)
        verified[key] = (run.version, run.verified_id)
        if run.finished_at is None:  # a run written without its end: the history decides
            found = stay_verification(
                service=run.service, environment=run.environment, version=run.version
            )
            verified[key] = (run.version, None)
            if found is not None:
                fallbacks[key] = found
    found_runs = Run.objects.only(*_VERSION_NOW).in_bulk(
        [pk for _, pk in verified.values() if pk is not None]
    )
    candidates = {}
    for service in services:
        for env in environments:
            source = sources[env.pk]
            if source is None or (service.pk, source.pk) not in verified:
                continue
            version, run_id = verified[(service.pk, source.pk)]
            by = fallbacks.get((service.pk, source.pk)) or found_runs.get(run_id)
            if by is not None:
                candidates[(service.pk, env.pk)] = Candidate(version, source, by)
    return candidates


@dataclass
class ServiceRow:
    """A service on one environment, as its service page shows it to one user."""

    cell: Cell
    actions: list  # the actions the user may run there
    history: list[Run]
    promote: Candidate | None = None  # offered only when it would change something
    promote_action: object = None
    rollback_targets: list[Run] = field(default_factory=list)
    rollback_action: object = None
    block: object = None  # the lock or freeze in force
    may_lock: bool = False

    @property
    def environment(self) -> Environment:
        return self.cell.environment


def service_rows(*, user, service) -> list[ServiceRow]:
    """One row per environment the user may see: what runs there, who put it there and
    when, the last run, drift, history, and what the user may do (promote, roll back)."""
    from apps.accounts.permissions import can_lock, can_run, can_view
    from apps.environments.selectors import launch_block

    environments = list(Environment.objects.all())
    cells = matrix(services=[service], environments=environments)[service.pk]
    actions = list(
        service.actions.select_related("playbook_version").prefetch_related("environments")
    )
    rows = []
    for cell in cells:
        env = cell.environment
        if not can_view(user, service=service, environment=env):
            continue
        runnable = [
            a
            for a in actions
            if env in a.environments.all() and can_run(user, action=a, environment=env)
        ]
        row = ServiceRow(
            cell=cell,
            actions=runnable,
            history=history(service=service, environment=env),
            block=launch_block(service=service, environment=env),
            may_lock=can_lock(user, environment=env, service=service),
        )
        deploy = deploy_action(service=service, environment=env)
        if deploy is not None and deploy in runnable:
            candidate = promotion_candidate(service=service, environment=env)
            current = cell.current.version if cell.current else None
            if candidate is not None and candidate.version != current:
                row.promote, row.promote_action = candidate, deploy
            row.rollback_targets = rollback_targets(
                service=service, environment=env, current=cell.current
            )
            row.rollback_action = deploy if row.rollback_targets else None
        else:
            rollback = next((a for a in runnable if a.kind == ActionKind.ROLLBACK), None)
            if rollback is not None and cell.current is not None:
                row.rollback_targets = rollback_targets(
                    service=service, environment=env, current=cell.current
                )[:1]
                row.rollback_action = rollback if row.rollback_targets else None
        rows.append(row)
    return rows


def version_parameters(*, service, environment, version: str, action) -> dict:
    """The parameters to deploy `version` with by `action`: those of the latest successful
    run of `action` that put it on `environment` (secrets are never kept, so never
    carried), and the version itself."""
    source = (
        Run.objects.filter(
            _changes(),
            service=service,
            environment=environment,
            action_slug=action.slug,
            version=version,
        )
        .order_by("-finished_at")
        .first()
    )
    secrets = secret_names(action.form)
    fields = {f["name"] for f in action.form}
    parameters = {
        k: v
        for k, v in (source.parameters if source else {}).items()
        if k in fields and k not in secrets
    }
    parameters[action.version_field] = version
    return parameters
