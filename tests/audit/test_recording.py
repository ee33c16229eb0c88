"""Every change to what may run, every run and every sign-in leaves its row, with its diff."""

import json
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.constants import Outcome, Via
from apps.audit.models import AuditEvent
from apps.audit.services import REDACTED, SECRET_UNSET
from apps.catalog.models import Action, PlaybookSource, Service
from apps.catalog.services import playbook_version_approve
from apps.environments.models import Environment
from apps.runs import services as runs
from apps.runs.constants import RunStatus
from tests.audit.conftest import all_text, record
from tests.factories import (
    PASSWORD,
    ActionFactory,
    EnvironmentFactory,
    PlaybookVersionFactory,
    ServiceFactory,
    UserFactory,
)
from tests.runs.helpers import launch

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-never-in-the-log"


def rows(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb).order_by("id"))


def admin_form(client, url: str) -> dict:
    """The data the admin's change (or add) page would post back as it is."""
    context = client.get(url).context
    forms = [context["adminform"].form]
    for inline in context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            key = form.add_prefix(name)
            if value is True:
                data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            else:
                data[key] = value
    return data


def post(client, url: str, changes: dict):
    response = client.post(url, {**admin_form(client, url), **changes})
    assert response.status_code == 302, response.context["adminform"].form.errors
    return response


# --- the admin ------------------------------------------------------------------------
def test_it_records_an_environment_created_changed_and_deleted_in_the_admin(ops_client, ops):
    inventory = {"all": {"hosts": {"web1": {}}, "vars": {"port": 80}}}
    post(ops_client, reverse("admin:environments_environment_add"), {
        "name": "Staging", "slug": "staging", "order": "15", "queue": "runs",
        "inventory": json.dumps(inventory),
    })  # fmt: skip
    env = Environment.objects.get(slug="staging")
    change = reverse("admin:environments_environment_change", args=[env.pk])
    inventory["all"]["vars"].update(port=8080, ansible_password=SECRET)
    post(ops_client, change, {"inventory": json.dumps(inventory), "order": "16"})
    post(ops_client, change, {})  # saved as it was: nothing to record
    ops_client.post(
        reverse("admin:environments_environment_delete", args=[env.pk]), {"post": "yes"}
    )

    [created] = rows("environment.create")
    assert (created.actor_name, created.via, created.environment) == ("ops", Via.ADMIN, "staging")
    assert created.details["changes"]["name"] == [None, "Staging"]
    assert created.details["changes"]["inventory"] == [
        None, {"all": {"hosts": {"web1": {}}, "vars": {"port": 80}}}
    ]  # fmt: skip
    [updated] = rows("environment.update")
    assert updated.details["changes"] == {
        "order": [15, 16],
        "inventory.all.vars.port": [80, 8080],
        "inventory.all.vars.ansible_password": [SECRET_UNSET, REDACTED],
    }
    [deleted] = rows("environment.delete")
    assert deleted.object_id == str(env.pk) and deleted.object_repr == "Staging"
    assert deleted.details["changes"]["slug"] == ["staging", None]
    assert SECRET not in all_text()


def test_it_records_a_playbook_source_created_changed_and_deleted(ops_client):
    post(ops_client, reverse("admin:catalog_playbooksource_add"), {
        "name": "infra", "url": "https://git.example.com/infra.git", "branch": "main",
    })  # fmt: skip
    source = PlaybookSource.objects.get(name="infra")
    post(ops_client, reverse("admin:catalog_playbooksource_change", args=[source.pk]),
         {"branch": "release"})  # fmt: skip
    ops_client.post(
        reverse("admin:catalog_playbooksource_delete", args=[source.pk]), {"post": "yes"}
    )

    assert rows("source.create")[0].details["changes"]["url"] == [
        None, "https://git.example.com/infra.git"
    ]  # fmt: skip
    assert rows("source.update")[0].details["changes"] == {"branch": ["main", "release"]}
    assert rows("source.delete")[0].details["changes"]["name"] == ["infra", None]


def test_it_records_a_service_and_the_actions_deleted_with_it(ops_client):
    service = ServiceFactory(slug="shop", name="Shop")
    deploy = ActionFactory(service=service, slug="deploy", label="Deploy")
    ActionFactory(service=service, slug="rollback", label="Rollback")
    post(ops_client, reverse("admin:catalog_service_change", args=[service.pk]),
         {"description": "The shop."})  # fmt: skip

    ops_client.post(reverse("admin:catalog_service_delete", args=[service.pk]), {"post": "yes"})

    [updated] = rows("service.update")
    assert (updated.service, updated.details["changes"]) == (
        "shop", {"description": ["", "The shop."]}
    )  # fmt: skip
    [deleted] = rows("service.delete")
    assert deleted.details["cascade"]["catalog.action"]["count"] == 2
    actions = rows("action.delete")
    assert sorted(a.object_repr for a in actions) == ["Shop / Deploy", "Shop / Rollback"]
    assert {a.details["deleted_with"] for a in actions} == {f"Shop (#{service.pk})"}
    assert str(deploy.pk) in {a.object_id for a in actions}
    assert not Service.objects.exists()


def test_it_records_an_action_removed_from_its_service_page(ops_client):
    service = ServiceFactory(slug="shop", name="Shop")
    action = ActionFactory(service=service, slug="deploy", label="Deploy", timeout=300)
    url = reverse("admin:catalog_service_change", args=[service.pk])

    post(ops_client, url, {"actions-0-DELETE": "on"})

    [deleted] = rows("action.delete")
    assert (deleted.object_id, deleted.service) == (str(action.pk), "shop")
    assert deleted.details["parent"] == f"Shop (#{service.pk})"
    assert deleted.details["changes"]["timeout"] == [300, None]
    assert not Action.objects.exists()


def test_it_records_what_an_action_change_changed(ops_client):
    test, qa = EnvironmentFactory(slug="test"), EnvironmentFactory(slug="qa")
    action = ActionFactory(service=ServiceFactory(slug="shop"), environments=[test], timeout=300)
    url = reverse("admin:catalog_action_change", args=[action.pk])

    post(ops_client, url, {"timeout": "900", "environments": [str(test.pk), str(qa.pk)]})

    [updated] = rows("action.update")
    assert updated.details["changes"] == {
        "environments": [["test"], ["qa", "test"]],
        "timeout": [300, 900],
    }


def test_it_records_each_object_a_bulk_delete_removes(ops_client):
    envs = [EnvironmentFactory(slug=slug) for slug in ("a", "b")]

    ops_client.post(
        reverse("admin:environments_environment_changelist"),
        {"action": "delete_selected", "_selected_action": [e.pk for e in envs], "post": "yes"},
    )

    assert sorted(e.environment for e in rows("environment.delete")) == ["a", "b"]


def test_it_records_the_approval_of_a_playbook_version_with_its_diff(ops):
    version = PlaybookVersionFactory(approved_at=None)

    playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)

    [approved] = rows("playbook_version.approve")
    changes = approved.details["changes"]
    assert changes["approved_by"] == [None, f"ops (#{ops.pk})"]
    assert changes["approved_at"][0] is None and changes["approved_at"][1].endswith("Z")
    assert approved.details["content_hash"] == version.content_hash


# --- runs -----------------------------------------------------------------------------
@pytest.fixture
def run_env(dev, local_env):
    action = ActionFactory(
        environments=[local_env],
        form=[{"name": "token", "type": "secret"}, {"name": "version", "type": "string"}],
    )
    return SimpleNamespace(action=action, env=local_env, dev=dev)


def _launch(run_env, user=None):
    return launch(
        user=user or run_env.dev,
        action=run_env.action,
        environment=run_env.env,
        parameters={"token": SECRET, "version": "1.2.3"},
    )


def test_a_finished_run_keeps_status_rc_and_the_hosts_summary(run_env):
    run = _launch(run_env)
    summary = {"web1": {"ok": 3, "changed": 1, "failed": 1}}

    runs.run_end(run=run, status=RunStatus.FAILED, rc=2, host_summary=summary)

    [finished] = rows("run.finished")
    assert finished.details["status"] == "failed" and finished.details["rc"] == 2
    assert finished.details["host_summary"] == summary
    assert finished.outcome == Outcome.FAILURE and finished.object_id == str(run.pk)
    assert rows("run.requested")[0].details["parameters"]["version"] == "1.2.3"
    assert SECRET not in all_text()


def test_a_canceled_run_keeps_who_canceled_it(run_env, ops):
    run = _launch(run_env)

    runs.run_cancel(run=run, user=ops, via=Via.WEB)

    [canceled] = rows("run.canceled")
    assert (canceled.actor_name, canceled.actor_id) == ("ops", ops.pk)


def test_a_refused_run_keeps_the_reason(run_env, auditor):
    with pytest.raises(runs.LaunchRefused):
        _launch(run_env, user=auditor)

    [refused] = rows("run.refused")
    assert refused.outcome == Outcome.REFUSED and refused.details["reason"]
    assert SECRET not in all_text()


# --- people ---------------------------------------------------------------------------
def test_it_records_sign_ins_failed_sign_ins_and_sign_outs(dev):
    client = Client(REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT="pytest-browser")

    client.post("/accounts/login/", {"login": "dev", "password": SECRET})
    client.post("/accounts/login/", {"login": "dev", "password": PASSWORD})
    client.post("/accounts/logout/")

    [failed] = rows("auth.login_failed")
    assert (failed.actor_id, failed.actor_name, failed.outcome) == (None, "dev", Outcome.REFUSED)
    assert (failed.ip, failed.user_agent) == ("192.0.2.7", "pytest-browser")
    [signed_in] = rows("auth.login")
    assert (signed_in.actor_name, signed_in.ip) == ("dev", "192.0.2.7")
    assert rows("auth.logout")[0].actor_name == "dev"
    assert SECRET not in all_text() and PASSWORD not in all_text()


def test_it_records_a_change_of_two_factor_authentication(dev, rf):
    from allauth.mfa import signals

    request = rf.post("/accounts/2fa/totp/activate", REMOTE_ADDR="192.0.2.8")
    authenticator = SimpleNamespace(type="totp")

    signals.authenticator_added.send(None, request=request, user=dev, authenticator=authenticator)
    signals.authenticator_removed.send(None, request=request, user=dev, authenticator=authenticator)

    assert [r.details["authenticator"] for r in rows("mfa.add") + rows("mfa.remove")] == [
        "totp", "totp"
    ]  # fmt: skip
    assert rows("mfa.add")[0].actor_name == "dev"


def test_rows_outlive_their_actor():
    user = UserFactory(username="leaver")
    user_id, event = user.pk, record(actor=user)

    user.delete()

    event.refresh_from_db()
    assert (event.actor_id, event.actor_name) == (user_id, "leaver")


def test_a_credential_is_recorded_without_its_value(ops):
    from apps.environments.constants import CredentialKind
    from apps.environments.services import credential_create

    credential_create(
        name="db", kind=CredentialKind.SECRET_VARIABLE, value=SECRET, variable="db_password",
        environments=[EnvironmentFactory(slug="test")], acting_user=ops, via=Via.CLI,
    )  # fmt: skip

    assert rows("credential.create")
    assert SECRET not in all_text()
