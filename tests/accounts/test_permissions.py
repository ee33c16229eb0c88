"""The permission questions, asked directly, and the lists each role gets."""

import re

import pytest

from apps.accounts import permissions
from apps.accounts.models import Grant, Right, Role
from apps.accounts.services import grant_save, membership_delete
from tests.accounts.conftest import ENVS
from tests.clients import api_client, page_client
from tests.factories import (
    ActionFactory,
    GrantFactory,
    RunFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)


def _runs_on(user, action, envs):
    return [
        e.slug for e in envs.values() if permissions.can_run(user, action=action, environment=e)
    ]


def test_production_is_never_implied_by_test_or_qa_grants(world):
    member = world.users["member"]

    assert _runs_on(member, world.deploy, world.envs) == ["test", "qa"]
    reason = permissions.refusal_reason(
        member, action=world.deploy, environment=world.envs["production"]
    )
    assert reason == (
        "No grant of your teams lets you run hello-web on Production. "
        "Your teams may run it on Test, QA only."
    )


def test_a_production_grant_adds_production_only(world):
    assert _runs_on(world.users["prod_member"], world.deploy, world.envs) == list(ENVS)
    release_only = UserFactory(username="release-only")
    world.teams["release"].memberships.create(user=release_only)

    assert _runs_on(release_only, world.deploy, world.envs) == ["production"]


def test_a_grant_on_every_service_covers_services_added_later(world):
    user = UserFactory(username="platform")
    team = TeamFactory(slug="platform", members=[user])
    GrantFactory(team=team, service=None, environment=world.envs["qa"], right=Right.RUN)
    later = ActionFactory(service=ServiceFactory(slug="later"), environments=world.envs.values())

    assert _runs_on(user, later, world.envs) == ["qa"]
    assert _runs_on(user, world.bill, world.envs) == ["qa"]
    assert permissions.can_view(user, service=later.service, environment=world.envs["qa"])
    assert not permissions.can_view(user, service=later.service, environment=world.envs["test"])


def test_a_view_grant_shows_but_never_runs(world):
    user = UserFactory(username="viewer")
    team = TeamFactory(slug="viewers", members=[user])
    GrantFactory(team=team, service=world.billing, environment=world.envs["test"], right=Right.VIEW)

    assert permissions.can_view_service(user, service=world.billing)
    assert permissions.can_view(user, service=world.billing, environment=world.envs["test"])
    assert not permissions.can_view(user, service=world.billing, environment=world.envs["qa"])
    assert _runs_on(user, world.bill, world.envs) == []
    assert permissions.can_view_run(user, world.billing_runs["test"])
    assert not permissions.can_view_run(user, world.billing_runs["qa"])


def test_the_owning_team_sees_its_service_everywhere_but_runs_only_where_granted(world):
    member = world.users["member"]

    for env in world.envs.values():
        assert permissions.can_view(member, service=world.hello, environment=env)
    assert permissions.can_view_run(member, world.runs["production"])
    assert not permissions.can_run(
        member, action=world.deploy, environment=world.envs["production"]
    )


def test_ops_see_everything_cancel_anything_and_run_only_through_grants(world):
    ops = world.users["ops"]

    assert permissions.can_view_service(ops, service=world.billing)
    assert permissions.can_cancel_run(ops, world.billing_runs["production"])
    assert _runs_on(ops, world.deploy, world.envs) == []
    team = TeamFactory(slug="ops-team", members=[ops])
    GrantFactory(team=team, service=None, environment=world.envs["test"], right=Right.RUN)
    permissions.access_forget(ops)
    assert _runs_on(ops, world.deploy, world.envs) == ["test"]


def test_an_auditor_runs_nothing_even_with_a_grant(world):
    auditor = world.users["auditor"]
    world.teams["web"].memberships.create(user=auditor)
    permissions.access_forget(auditor)

    assert _runs_on(auditor, world.deploy, world.envs) == []
    assert (
        permissions.refusal_reason(auditor, action=world.deploy, environment=world.envs["test"])
        == "Auditors can read everything but run nothing."
    )
    assert not permissions.can_cancel_run(auditor, world.runs["test"])
    assert permissions.can_view_run(auditor, world.billing_runs["production"])
    assert permissions.can_read_audit(auditor)


def test_a_superuser_runs_everything(world):
    root = UserFactory(username="root", is_superuser=True, is_staff=True, role=Role.DEVELOPER)

    assert _runs_on(root, world.bill, world.envs) == list(ENVS)


def test_an_inactive_user_may_do_nothing(world):
    member = world.users["member"]
    member.is_active = False

    assert not permissions.can_view_run(member, world.runs["test"])
    assert permissions.refusal_reason(
        member, action=world.deploy, environment=world.envs["test"]
    ) == ("Sign in to run actions.")
    assert not permissions.can_read_audit(member)


def test_an_action_not_offered_on_an_environment_is_refused_first(world):
    action = ActionFactory(service=world.hello, environments=[world.envs["test"]])

    reason = permissions.refusal_reason(
        world.users["prod_member"], action=action, environment=world.envs["qa"]
    )

    assert reason == f"{action.label} is not offered on QA."


def test_only_the_requester_or_ops_cancel(world):
    mine = RunFactory(
        action=world.deploy,
        environment=world.envs["test"],
        requested_by=world.users["member"],
        check_mode=True,
    )

    assert permissions.can_cancel_run(world.users["member"], mine)
    assert not permissions.can_cancel_run(world.users["prod_member"], mine)
    assert permissions.can_cancel_run(world.users["ops"], mine)


def test_removing_a_membership_or_a_grant_takes_the_right_away(world):
    member = world.users["member"]
    grant = Grant.objects.get(team=world.teams["web"], environment=world.envs["qa"])
    grant.right = Right.VIEW
    grant_save(grant=grant, acting_user=world.users["ops"], via="admin")
    permissions.access_forget(member)
    assert _runs_on(member, world.deploy, world.envs) == ["test"]

    membership_delete(
        membership=world.teams["web"].memberships.get(user=member),
        acting_user=world.users["ops"],
        via="admin",
    )
    permissions.access_forget(member)
    assert _runs_on(member, world.deploy, world.envs) == []
    assert not permissions.can_view_service(member, service=world.hello)


# --- lists ---------------------------------------------------------------------------
VISIBLE = {
    # role: (hello-web environments seen, billing environments seen)
    "outsider": ((), ()),
    "member": (ENVS, ()),
    "prod_member": (ENVS, ()),
    "ops": (ENVS, ENVS),
    "auditor": (ENVS, ENVS),
}
BUTTONS = {
    "outsider": (),
    "member": ("test", "qa"),
    "prod_member": ENVS,
    "ops": (),
    "auditor": (),
}


def _run_ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<td><a href="/runs/(\d+)/">#\d+</a></td>', html)}


@pytest.mark.parametrize("role", list(VISIBLE))
def test_the_run_list_shows_only_the_runs_the_user_may_see(world, role):
    hello_envs, billing_envs = VISIBLE[role]
    expected = {world.runs[e].pk for e in hello_envs} | {
        world.billing_runs[e].pk for e in billing_envs
    }

    html = page_client(world.users[role]).get("/runs/").content.decode()
    api = api_client(world.users[role])

    assert _run_ids(html) == expected
    filtered = page_client(world.users[role]).get("/runs/?environment=production").content
    assert (
        _run_ids(filtered.decode())
        == {run.pk for run in (world.runs["production"], world.billing_runs["production"])}
        & expected
    )
    # The environment filter offers only environments the user sees something in.
    select = re.search(r'<select[^>]*name="environment".*?</select>', html, re.S).group(0)
    offered = set(re.findall(r'<option value="([a-z]+)"', select))
    assert offered == set(hello_envs) | set(billing_envs)
    assert api.get(f"/api/v1/runs/{world.runs['qa'].pk}/").status_code == (
        200 if "qa" in hello_envs else 404  # a run one may not see reads as none
    )


@pytest.mark.parametrize("role", list(VISIBLE))
def test_the_catalog_shows_only_what_the_user_may_see_and_press(world, role):
    hello_envs, billing_envs = VISIBLE[role]

    html = page_client(world.users[role]).get("/").content.decode()

    rows = dict.fromkeys(re.findall(r'<section class="service" id="service-([a-z-]+)">', html))
    seen = [s for s, e in (("billing", billing_envs), ("hello-web", hello_envs)) if e]
    owners = {"billing": world.teams["payments"], "hello-web": world.teams["web"]}
    mine = {s for s, team in owners.items() if team.members.filter(pk=world.users[role].pk)}
    # Grouped by team, the user's own teams first (then Payments before Web, by name).
    assert list(rows) == sorted(seen, key=lambda s: s not in mine)
    hello = html.split('id="service-hello-web"')[1] if hello_envs else ""
    hello = hello.split('<section class="service"')[0]
    assert re.findall(r'<tr data-environment="([a-z]+)">', hello) == list(hello_envs)
    pressable = re.findall(r'href="/services/hello-web/deploy/([a-z]+)/"', html)
    assert pressable == list(BUTTONS[role])
    assert not re.search(r'href="/services/billing/[a-z-]+/[a-z]+/', html)  # no action form


@pytest.mark.parametrize("role", list(VISIBLE))
def test_the_api_catalog_lists_only_what_the_user_may_see_and_run(world, role):
    hello_envs, billing_envs = VISIBLE[role]

    body = api_client(world.users[role]).get("/api/v1/catalog/").json()

    services = {s["slug"]: s for s in body}
    assert set(services) == {
        s for s, e in (("billing", billing_envs), ("hello-web", hello_envs)) if e
    }
    if "hello-web" in services:
        (deploy,) = services["hello-web"]["actions"]
        assert deploy["environments"] == list(BUTTONS[role])
