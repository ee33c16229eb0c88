"""A developer who may run one service on one environment, a run of theirs still queued
(so it can be canceled), and an API token of theirs: what the input tests send with."""

from types import SimpleNamespace

import pytest
from django.test import Client

from apps.accounts.models import Right
from apps.accounts.services import token_create
from tests.factories import (
    ActionFactory,
    EnvironmentFactory,
    GrantFactory,
    RunFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)


@pytest.fixture
def api_world(db):
    user = UserFactory(username="member")
    team = TeamFactory(slug="web", members=[user])
    environment = EnvironmentFactory(slug="test", name="Test")
    service = ServiceFactory(slug="hello-web", team=team)
    GrantFactory(team=team, service=service, environment=environment, right=Right.RUN)
    action = ActionFactory(service=service, slug="deploy", environments=[environment])
    # A dry run holds no deploy lock: launches through the API still go.
    run = RunFactory(action=action, environment=environment, requested_by=user, check_mode=True)
    _, key = token_create(user=user, name="ci", acting_user=None, via="cli")
    return SimpleNamespace(
        user=user,
        environment=environment,
        service=service,
        action=action,
        run=run,
        key=key,
        client=Client(headers={"Authorization": f"Token {key}"}),
    )
