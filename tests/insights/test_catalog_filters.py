"""Finding one's services among many: search, team, environment and "mine" on the
catalog, what runs where and the runs list; groups by team, the user's own first; and
pages whose queries do not grow with the number of services."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Right
from apps.catalog.constants import ActionKind
from apps.runs.constants import RunStatus
from tests.clients import page_client
from tests.factories import (
    ActionFactory,
    EnvironmentFactory,
    GrantFactory,
    RunFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)


def _services(html: str) -> list[str]:
    """The services a page lists, in order (catalog sections or matrix rows)."""
    return re.findall(r'(?:<section class="service" id="service-|data-service=")([^"]+)"', html)


def _teams(html: str) -> list[str]:
    """The team groups of a page, in order ("" for services of no team)."""
    return re.findall(r'class="team-group"[^>]*data-team="([^"]*)"', html)


class World:
    """Three teams and their services on test and production; a developer, Dee, in team
    Zeta (last by name) who may run every service on test and only see production."""

    def __init__(self):
        self.test = EnvironmentFactory(slug="test", name="Test", order=10)
        self.prod = EnvironmentFactory(slug="production", name="Production", order=20)
        self.dee = UserFactory(username="dee")
        self.zeta = TeamFactory(slug="zeta", name="Zeta", members=[self.dee])
        self.alpha = TeamFactory(slug="alpha", name="Alpha")
        self.beta = TeamFactory(slug="beta", name="Beta")
        self.services = {}
        for slug, team, description in [
            ("billing", self.alpha, "Invoices and payments."),
            ("checkout", self.beta, "Takes the billing address and the card."),
            ("search", self.alpha, "Finds products."),
            ("mailer", self.zeta, "Sends the newsletters."),
            ("legacy", None, "The old monolith."),
        ]:
            service = ServiceFactory(slug=slug, name=slug, team=team, description=description)
            ActionFactory(
                service=service, slug="deploy", label="Deploy", kind=ActionKind.DEPLOY,
                version_field="version",
                form=[{"name": "version", "type": "string", "required": True}],
                environments=[self.test, self.prod],
            )  # fmt: skip
            self.services[slug] = service


@pytest.fixture
def world(db):
    return World()


@pytest.fixture
def dee_runs_on_test(world):
    """Zeta may run billing on test, and see everything on production."""
    GrantFactory(team=world.zeta, service=world.services["billing"], environment=world.test)
    GrantFactory(team=world.zeta, service=None, environment=world.prod, right=Right.VIEW)
    return page_client(world.dee)


# --- the catalog --------------------------------------------------------------------
def test_the_catalog_groups_services_by_team_with_the_users_own_team_first(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/").content.decode()
    assert _teams(html) == ["zeta", "alpha", "beta", ""]
    assert _services(html) == ["mailer", "billing", "search", "checkout", "legacy"]
    assert "5 services, grouped by team: yours first." in html
    assert "your team" in html.split('data-team="alpha"')[0]  # the badge is Zeta's


def test_the_search_finds_services_by_name_and_by_description(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/?q=BILLING").content.decode()
    # billing by its name; checkout by its description ("the billing address").
    assert _services(html) == ["billing", "checkout"]
    assert "2 services match" in html
    assert 'value="BILLING"' in html  # the search stays in its box


def test_the_team_filter_shows_that_teams_services_only(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/?team=alpha").content.decode()
    assert _services(html) == ["billing", "search"]
    assert '<option value="alpha" selected>' in html


def test_mine_is_the_services_of_my_teams_and_those_i_may_run(world, dee_runs_on_test):
    # mailer: Zeta owns it; billing: Zeta may run it on test. The rest Dee only sees.
    html = dee_runs_on_test.get("/?mine=1").content.decode()
    assert _services(html) == ["mailer", "billing"]
    assert 'name="mine" value="1" checked' in html


def test_the_environment_filter_shows_that_environment_only(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/?environment=test&team=alpha").content.decode()
    # On test Dee sees billing (a run grant) but not search (nothing there).
    assert _services(html) == ["billing"]
    assert 'data-environment="test"' in html
    assert 'data-environment="production"' not in html


def test_filters_combine(world, dee_runs_on_test):
    assert _services(dee_runs_on_test.get("/?q=s&team=alpha&mine=1").content.decode()) == [
        "billing"
    ]


def test_an_empty_result_says_so(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/?q=nothing-like-this").content.decode()
    assert _services(html) == []
    assert "No services match these filters." in html
    assert "0 services match" in html


def test_an_unknown_team_is_a_clear_error_beside_its_field(world, dee_runs_on_test):
    response = dee_runs_on_test.get("/?team=gone")
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is no such team." in html
    assert _services(html) == ["mailer", "billing", "search", "checkout", "legacy"]


def test_the_filters_form_is_a_labelled_get_form(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/").content.decode()
    form = re.search(r'<form method="get"[^>]*role="search"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None
    for label in ("Search", "Team", "Environment", "Only my services"):
        assert re.search(rf"<label[^>]*>\s*(<span>)?(<input[^>]*>)?\s*{label}", form.group(1)), (
            label
        )


def test_an_outsider_finds_nothing_the_search_would_reveal(world):
    outsider = page_client(UserFactory(username="outsider"))
    html = outsider.get("/?q=billing").content.decode()
    assert _services(html) == []
    assert "No services match these filters." in html


# --- what runs where and the runs list ----------------------------------------------
def test_what_runs_where_is_grouped_and_filtered_like_the_catalog(world, dee_runs_on_test):
    html = dee_runs_on_test.get("/what-runs-where/").content.decode()
    assert _teams(html) == ["zeta", "alpha", "beta", ""]
    assert _services(html) == ["mailer", "billing", "search", "checkout", "legacy"]
    assert _services(dee_runs_on_test.get("/what-runs-where/?mine=1").content.decode()) == [
        "mailer",
        "billing",
    ]
    one_column = dee_runs_on_test.get("/what-runs-where/?environment=production").content
    assert 'data-environment="test"' not in one_column.decode()
    empty = dee_runs_on_test.get("/what-runs-where/?q=zzz").content.decode()
    assert "No services match these filters." in empty


def _deploys(world):
    """One finished deploy of each service on production, in the order of the list."""
    now = timezone.now()
    return {
        slug: RunFactory(
            action=service.actions.get(),
            environment=world.prod,
            status=RunStatus.SUCCESSFUL,
            version="1.0.0",
            finished_at=now - timedelta(minutes=i),
        )
        for i, (slug, service) in enumerate(world.services.items())
    }


def _listed(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-run="(\d+)">', html)]


def test_the_runs_list_filters_by_team_search_and_mine(world, dee_runs_on_test):
    runs = _deploys(world)
    ids = {slug: run.pk for slug, run in runs.items()}
    team = dee_runs_on_test.get("/runs/?team=alpha").content.decode()
    assert _listed(team) == sorted([ids["billing"], ids["search"]], reverse=True)
    search = dee_runs_on_test.get("/runs/?q=billing").content.decode()
    assert _listed(search) == sorted([ids["billing"], ids["checkout"]], reverse=True)
    mine = dee_runs_on_test.get("/runs/?mine=1").content.decode()
    assert _listed(mine) == sorted([ids["billing"], ids["mailer"]], reverse=True)
    empty = dee_runs_on_test.get("/runs/?q=zzz").content.decode()
    assert _listed(empty) == [] and "No runs match." in empty
    # The filters stay in the pages' links.
    assert dee_runs_on_test.get("/runs/?team=gone").status_code == 400


# --- the queries do not grow with the services ----------------------------------------
def _more_services(world, count: int, start: int) -> None:
    """`count` more services with history on both environments: a deploy and a
    verification on test, a deploy on production; Zeta may run them on test."""
    now = timezone.now()
    for i in range(start, start + count):
        service = ServiceFactory(slug=f"svc{i:03}", team=world.alpha)
        deploy = ActionFactory(
            service=service, slug="deploy", label="Deploy", kind=ActionKind.DEPLOY,
            version_field="version", environments=[world.test, world.prod],
            form=[{"name": "version", "type": "string", "required": True}],
        )  # fmt: skip
        smoke = ActionFactory(
            service=service, slug="smoke", label="Smoke", kind=ActionKind.VERIFY,
            environments=[world.test, world.prod],
        )  # fmt: skip
        for action, env, minutes in ((deploy, world.test, 30), (smoke, world.test, 20),
                                     (deploy, world.prod, 10)):  # fmt: skip
            RunFactory(
                action=action, environment=env, status=RunStatus.SUCCESSFUL, version="2.0.0",
                started_at=now - timedelta(minutes=minutes + 1),
                finished_at=now - timedelta(minutes=minutes),
            )  # fmt: skip


@pytest.mark.parametrize(
    "url", ["/", "/?mine=1", "/what-runs-where/", "/what-runs-where/?team=alpha", "/runs/"]
)
def test_a_page_runs_as_many_queries_for_twelve_services_as_for_two(world, url):
    world.prod.require_verified = True
    world.prod.save()
    GrantFactory(team=world.zeta, service=None, environment=world.test, right=Right.RUN)
    GrantFactory(team=world.zeta, service=None, environment=world.prod, right=Right.RUN)
    client = page_client(world.dee)
    _more_services(world, 2, 0)

    def queries() -> int:
        client.get(url)  # the session and the user's rights read once before
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    few = queries()
    _more_services(world, 10, 2)
    many = queries()
    assert many == few, f"{url}: {few} queries for 7 services, {many} for 17"
    assert many <= 40


def test_promote_shows_on_the_catalog_for_a_version_verified_before(world):
    """The batched promotion candidates offer what the service page offers."""
    world.prod.require_verified = True
    world.prod.save()
    GrantFactory(team=world.zeta, service=None, environment=world.test, right=Right.RUN)
    GrantFactory(team=world.zeta, service=None, environment=world.prod, right=Right.RUN)
    _more_services(world, 1, 0)
    html = page_client(world.dee).get("/?q=svc000").content.decode()
    # 2.0.0 runs on production already: nothing to promote.
    assert "button primary promote" not in html
    service = world.services["billing"]
    deploy = service.actions.get()
    smoke = ActionFactory(
        service=service, slug="smoke", kind=ActionKind.VERIFY, environments=[world.test]
    )
    now = timezone.now()
    RunFactory(
        action=deploy, environment=world.test, status=RunStatus.SUCCESSFUL, version="3.1.0",
        started_at=now - timedelta(minutes=9), finished_at=now - timedelta(minutes=8),
    )  # fmt: skip
    RunFactory(
        action=smoke, environment=world.test, status=RunStatus.SUCCESSFUL, version="3.1.0",
        started_at=now - timedelta(minutes=7), finished_at=now - timedelta(minutes=6),
    )  # fmt: skip
    html = page_client(world.dee).get("/?q=billing").content.decode()
    assert "Promote 3.1.0 from Test" in html


def test_a_long_catalog_comes_in_pages_that_keep_the_filters(world, dee_runs_on_test):
    for i in range(30):
        ServiceFactory(slug=f"many{i:02}", name=f"many{i:02}", team=world.zeta)
    first = dee_runs_on_test.get("/?team=zeta").content.decode()
    # mailer and many00…many29, Zeta's: 31 services, 25 a page, by name.
    assert _services(first) == sorted(["mailer", *[f"many{i:02}" for i in range(30)]])[:25]
    assert "Page 1 of 2" in first
    assert 'href="/?team=zeta&amp;page=2"' in first
    second = dee_runs_on_test.get("/?team=zeta&page=2").content.decode()
    assert _services(second) == sorted(["mailer", *[f"many{i:02}" for i in range(30)]])[25:]
