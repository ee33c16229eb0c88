"""Property-based tests of the whole API against its own OpenAPI document (Schemathesis):
for every operation, generated requests, valid and invalid, through the real WSGI app
with a real API token. No answer is a 5xx, and each is one the document describes: its
status code listed for the operation, its content type, its body matching the schema.

Each operation is tried with generated path parameters (mostly objects that do not
exist) and again with those of objects that do (a run, an environment, a lock, a
token, an audit row), and with the names of a real service, action and environment in
its body, so that the calls reach past the lookups into the code that does the work."""

from datetime import timedelta

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from apps.accounts.models import ApiToken, Role
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.environments.services import lock_create
from tests.factories import EnvironmentFactory

EXAMPLES = 10  # per operation and pass: the whole API in well under a minute
# Not checked: that every request the document allows is accepted, and every one it does
# not is refused. A launch naming no service is a 400, a lock held a 409, by design and
# beyond what a schema can say; a filter left empty (`?after=`) is no filter, as the
# pages send it. Every other check is: no 5xx, status codes, content types, headers and
# bodies as documented, authentication enforced, unknown methods a 405.
SEMANTIC_CHECKS = [positive_data_acceptance, negative_data_rejection]
KNOWN_BODY = {
    "service": "hello-web",
    "action": "deploy",
    "environment": "test",
    "environments": ["test"],
}


@pytest.fixture
def wsgi_app(api_world):
    # As Django's test client does: the test's database connection stays open between
    # requests (it holds the test's transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def known(api_world) -> dict:
    """Path parameters of objects that exist; the caller is Ops (who reads the audit log
    too) in the team that may run hello-web on test."""
    api_world.user.role = Role.OPS
    api_world.user.save()
    EnvironmentFactory(slug="qa", name="QA")
    lock = lock_create(
        user=api_world.user,
        environment=api_world.environment,
        service=api_world.service,
        reason="release freeze",
        expires_at=timezone.now() + timedelta(hours=1),
        via="cli",
    )
    other, _ = token_create(user=api_world.user, name="other", acting_user=None, via="cli")
    return {
        "run_id": api_world.run.pk,
        "environment_slug": "test",
        "service_slug": "hello-web",
        "lock_id": lock.pk,
        "token_id": other.pk,
        "event_id": AuditEvent.objects.order_by("id").values_list("id", flat=True)[0],
    }


def _failures(operation, mode, path_parameters: dict | None, auth: dict, reset) -> str:
    """What went wrong on `operation` in this pass (after Hypothesis shrank it), or ""."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same examples on every run
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        reset()
        if path_parameters is not None and isinstance(case.body, dict):
            case.body.update({k: v for k, v in KNOWN_BODY.items() if k in case.body})
        case.call_and_validate(headers=auth, excluded_checks=SEMANTIC_CHECKS)

    try:
        check()
    except Unsatisfiable:  # an operation without parameters or body has no invalid form
        return ""
    except (Exception, BaseExceptionGroup) as exc:  # gathered, then shown together
        known = "existing objects" if path_parameters is not None else "generated"
        return f"--- {mode.value}, {known}: {operation.label}\n{exc}"
    return ""


@pytest.mark.slow
def test_every_answer_is_documented_and_none_is_a_5xx(api_world, wsgi_app, known):
    auth = {"Authorization": f"Token {api_world.key}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", wsgi_app, headers=auth)

    def reset():
        # A generated call may revoke the token the calls are made with: restored first.
        ApiToken.objects.filter(key_hash=ApiToken.hash_key(api_world.key)).update(revoked_at=None)

    operations = [result.ok() for result in schema.get_all_operations()]
    failures = [
        _failures(operation, mode, path_parameters, auth, reset)
        for operation in operations
        for path_parameters in (None, {k: v for k, v in known.items() if k in operation.path})
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]

    assert len(operations) >= 15
    assert not any(failures), "\n\n".join(f for f in failures if f)
