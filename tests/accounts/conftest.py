"""A small world of services, teams and grants, and one person per role.

- hello-web is owned by team "web"; billing by team "payments" (none of ours is in it).
- member: in "web", which may run hello-web on test and QA.
- prod_member: in "web" too, and in "release", which may run hello-web on production.
- outsider: a developer in no team. ops: the Ops role (staff, not a superuser), no team.
- auditor: the auditor role (staff). Every role's runs are made by someone else ("owner").
"""

from types import SimpleNamespace

import pytest

from apps.accounts.models import Right, Role
from tests.factories import (
    ActionFactory,
    EnvironmentFactory,
    GrantFactory,
    RunFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)

ENVS = ("test", "qa", "production")
ROLES = ("anonymous", "outsider", "member", "prod_member", "ops", "auditor")


@pytest.fixture
def world(db):
    envs = {
        slug: EnvironmentFactory(slug=slug, name=name, order=order)
        for slug, name, order in (("test", "Test", 10), ("qa", "QA", 20),
                                  ("production", "Production", 30))
    }  # fmt: skip
    users = {
        "outsider": UserFactory(username="outsider"),
        "member": UserFactory(username="member"),
        "prod_member": UserFactory(username="prod_member"),
        "ops": UserFactory(username="opsy", role=Role.OPS, is_staff=True),
        "auditor": UserFactory(username="audrey", role=Role.AUDITOR, is_staff=True),
        "owner": UserFactory(username="owner"),
    }
    web = TeamFactory(slug="web", members=[users["member"], users["prod_member"], users["owner"]])
    release = TeamFactory(slug="release", members=[users["prod_member"], users["owner"]])
    payments = TeamFactory(slug="payments", members=[users["owner"]])
    hello = ServiceFactory(slug="hello-web", name="hello-web", team=web)
    billing = ServiceFactory(slug="billing", name="billing", team=payments)
    for env in ("test", "qa"):
        GrantFactory(team=web, service=hello, environment=envs[env], right=Right.RUN)
    GrantFactory(team=release, service=hello, environment=envs["production"], right=Right.RUN)
    for env in envs.values():
        GrantFactory(team=payments, service=billing, environment=env, right=Right.RUN)
    deploy = ActionFactory(
        service=hello, slug="deploy", label="Deploy", environments=list(envs.values())
    )
    bill = ActionFactory(
        service=billing, slug="deploy", label="Deploy", environments=list(envs.values())
    )
    # Queued dry runs: they can be canceled, and hold no deploy lock (launches still go).
    runs, billing_runs = (
        {
            env: RunFactory(action=action, environment=envs[env], requested_by=users["owner"],
                            check_mode=True)
            for env in ENVS
        }
        for action in (deploy, bill)
    )  # fmt: skip
    return SimpleNamespace(
        envs=envs,
        users=users,
        teams={"web": web, "release": release, "payments": payments},
        hello=hello,
        billing=billing,
        deploy=deploy,
        bill=bill,
        runs=runs,
        billing_runs=billing_runs,
    )
