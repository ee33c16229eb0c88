"""The service page, Promote, Roll back, the production confirmation, what runs where
(page and API): what a user sees after a history of runs."""

import re

import pytest

from apps.runs.models import Run
from tests.clients import api_client, page_client
from tests.environments.helpers import hold_lock

pytestmark = pytest.mark.django_db

SERVICE = "/services/hello-web/"


def _row(html: str, env: str) -> str:
    return re.search(rf'<tr data-environment="{env}".*?</tr>', html, re.S).group(0)


def _section(html: str, env: str) -> str:
    return re.search(rf'<section class="env-card" id="env-{env}".*?</section>', html, re.S).group(0)


def test_the_service_page_shows_each_environment_with_version_commit_who_and_last_run(
    demo, history
):
    deployed = history.shipped("test", "1.0.0")
    history.deploy("qa", "1.0.0")
    failed = history.deploy("qa", "1.1.0", status="failed")

    html = page_client(demo.dev).get(SERVICE).content.decode()

    test = _row(html, "test")
    assert ">1.0.0</a>" in test
    assert deployed.playbook_commit[:10] in test
    assert "dev" in test
    assert "Successful" in test and "Smoke test" in test  # the last run there
    qa = _row(html, "qa")
    assert ">1.0.0</a>" in qa  # a failed deploy changes nothing
    assert f"Failed</span> Deploy #{failed.pk}" in qa
    assert "none yet" in _row(html, "production")


def test_production_running_what_qa_never_verified_is_marked(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("qa", "1.0.0")
    history.deploy("production", "1.0.0")
    history.deploy("production", "0.9.9")  # put there some other way, never verified on QA

    html = page_client(demo.dev).get(SERVICE).content.decode()

    production = _row(html, "production")
    assert 'class="drift"' in production
    assert "not verified on QA" in production
    assert "drift" not in _row(html, "qa")


def test_promote_is_offered_with_what_runs_before_verified_there(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("test", "1.1.0")

    html = page_client(demo.dev).get(SERVICE).content.decode()

    assert "Promote 1.1.0 from Test" in _section(html, "qa")
    assert "Promote" not in _section(html, "production")  # nothing verified on QA
    assert "Promote" not in _section(html, "test")  # nothing comes before test


def test_promote_offers_nothing_replaced_or_rolled_back_before(demo, history):
    history.shipped("test", "2.0.0")
    broken = history.shipped("test", "2.1.0")
    history.deploy("test", "2.0.0", rollback_of=broken, reason="2.1.0 breaks the header")
    client = page_client(demo.dev)

    assert "Promote" not in _section(client.get(SERVICE).content.decode(), "qa")
    page = client.get("/services/hello-web/environments/qa/promote/").content.decode()
    assert "2.1.0" not in page
    assert "Nothing to promote: hello-web 2.0.0 has not been verified on Test" in page


def test_promote_is_not_offered_when_it_would_change_nothing(demo, history):
    history.shipped("test", "1.0.0")
    history.deploy("qa", "1.0.0")

    assert "Promote" not in _section(page_client(demo.dev).get(SERVICE).content.decode(), "qa")


def test_roll_back_is_offered_only_where_an_earlier_version_ran(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")
    history.deploy("qa", "1.0.0")
    history.deploy("qa", "1.0.0")  # the same version twice: nothing to go back to

    html = page_client(demo.dev).get(SERVICE).content.decode()

    assert "Roll back" in _section(html, "test")
    assert "Roll back" not in _section(html, "qa")
    assert "Roll back" not in _section(html, "production")


def test_who_may_only_look_sees_no_buttons(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("qa", "1.0.0")
    history.deploy("production", "0.9.0")
    history.deploy("production", "1.0.0")

    production = _section(page_client(demo.tester).get(SERVICE).content.decode(), "production")

    assert "1.0.0" in production  # tester sees production
    buttons = re.search(r'<div class="buttons">(.*?)</div>', production, re.S).group(1)
    assert "<a" not in buttons
    assert "Roll back" not in production
    refused = page_client(demo.tester).get("/services/hello-web/environments/production/rollback/")
    assert refused.status_code == 403
    assert "No grant of your teams lets you run hello-web on Production" in (
        refused.content.decode()
    )


def test_the_history_labels_rollbacks_as_rollbacks(demo, history):
    history.deploy("test", "1.0.0")
    bad = history.deploy("test", "1.1.0")
    rollback = history.deploy("test", "1.0.0", rollback_of=bad, reason="slow")

    section = _section(page_client(demo.dev).get(SERVICE).content.decode(), "test")

    line = re.search(rf"<tr[^>]*>\s*<td><a href=\"/runs/{rollback.pk}/\">.*?</tr>", section, re.S)
    assert 'class="is-rollback"' in line.group(0)
    assert f'Rollback</span> of <a href="/runs/{bad.pk}/">#{bad.pk}</a> (1.1.0)' in line.group(0)
    assert 'Runs <strong class="version">1.0.0</strong>, rolled back by dev' in section


def test_the_promote_page_names_source_target_version_replaced_and_parameters(demo, history):
    history.shipped("test", "1.1.0")
    history.deploy("qa", "1.0.0")
    dry = history.deploy("qa", "1.1.0", check_mode=True)

    html = (
        page_client(demo.dev).get("/services/hello-web/environments/qa/promote/").content.decode()
    )

    assert "<h1>Promote hello-web 1.1.0 from Test to QA</h1>" in html
    assert re.search(r'class="version new-version">1.1.0<', html)
    assert re.search(r'class="version replaces">1.0.0 ', html)
    assert re.search(r"<th scope=\"row\">version</th><td><code>1.1.0</code>", html)
    assert demo.deploy.playbook_version.content_hash in html
    assert f'href="/runs/{dry.pk}/">run #{dry.pk}</a>' in html  # the last dry run


def test_promote_launches_the_verified_version_marked_as_a_promotion(demo, history):
    history.shipped("test", "1.1.0")

    response = page_client(demo.dev).post(
        "/services/hello-web/environments/qa/promote/",
        {"pushbutton_verify": "1", "seen": "1.1.0:"},  # 1.1.0 offered; nothing on QA yet
    )

    run = Run.objects.get(environment=demo.envs["qa"])
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.version, run.promoted_from, run.auto_verify) == ("1.1.0", demo.envs["test"], True)


def test_a_production_run_needs_the_confirmation_step(demo, history):
    history.shipped("test", "1.1.0")
    history.shipped("qa", "1.1.0")
    history.deploy("production", "1.0.0")
    client = page_client(demo.dev)

    shown = client.post("/services/hello-web/deploy/production/", {"version": "1.1.0"})

    html = shown.content.decode()
    assert shown.status_code == 200
    assert "Confirm: Deploy hello-web on Production" in html
    assert re.search(r'class="version new-version">1.1.0<', html)
    assert re.search(r'class="version replaces">1.0.0 ', html)
    assert not Run.objects.filter(environment=demo.envs["production"], version="1.1.0").exists()

    confirmed = client.post(
        "/services/hello-web/deploy/production/",
        {"version": "1.1.0", "pushbutton_confirmed": "1"},
    )

    run = Run.objects.get(environment=demo.envs["production"], version="1.1.0")
    assert confirmed["Location"] == f"/runs/{run.pk}/"


def test_the_confirmation_refuses_what_the_launch_would_refuse(demo, history):
    history.shipped("test", "1.1.0")

    shown = page_client(demo.dev).post(
        "/services/hello-web/deploy/production/", {"version": "1.1.0"}
    )

    assert "has not been verified on QA" in shown.content.decode()
    assert "Confirm:" not in shown.content.decode()


def test_roll_back_asks_for_a_reason_and_says_what_will_change(demo, history):
    first = history.deploy("test", "1.0.0")
    second = history.deploy("test", "1.1.0")
    url = "/services/hello-web/environments/test/rollback/"

    html = page_client(demo.dev).get(url).content.decode()
    assert 'Running now: <strong class="version">1.1.0</strong>' in html
    assert f'value="{first.pk}" checked' in html
    assert "goes from <strong>1.1.0</strong> back to" in html

    missing = page_client(demo.dev).post(
        url, {"to": first.pk, "reason": "  ", "seen": f":{second.pk}"}
    )
    assert missing.status_code == 400
    assert "Say why you roll back" in missing.content.decode()
    assert not Run.objects.filter(rollback_of__isnull=False).exists()


def test_what_runs_where_after_a_sequence_of_runs(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("qa", "1.0.0")
    history.shipped("production", "1.0.0")
    history.shipped("test", "1.1.0")
    history.deploy("qa", "1.1.0")
    history.deploy("production", "1.0.1")  # never verified on QA

    html = page_client(demo.dev).get("/what-runs-where/").content.decode()

    row = re.search(r'<tr data-service="hello-web">.*?</tr>', html, re.S).group(0)
    cells = dict(re.findall(r'<td data-environment="(\w+)"[^>]*>(.*?)</td>', row, re.S))
    assert ">1.1.0</a>" in cells["test"]
    assert ">1.1.0</a>" in cells["qa"]
    assert ">1.0.1</a>" in cells["production"]
    assert "not verified on QA" in cells["production"]
    assert "not verified" not in cells["qa"]

    body = api_client(demo.dev).get("/api/v1/environments/").json()
    assert [env["slug"] for env in body] == ["test", "qa", "production"]
    assert [env["previous"] for env in body] == [None, "test", "qa"]
    versions = {env["slug"]: env["services"][0] for env in body}
    assert versions["production"]["version"] == "1.0.1"
    assert versions["production"]["drift"] is True
    assert versions["qa"]["drift"] is False
    assert versions["test"]["verified"] is True
    assert versions["qa"]["verified"] is False
    assert body[1]["require_verified"] is True

    per_service = api_client(demo.dev).get("/api/v1/services/hello-web/environments/").json()
    assert [(d["environment"], d["version"]) for d in per_service] == [
        ("test", "1.1.0"),
        ("qa", "1.1.0"),
        ("production", "1.0.1"),
    ]
    assert api_client(demo.dev).get("/api/v1/services/nope/environments/").status_code == 404


def test_locks_of_services_one_may_not_see_are_not_shown(demo):
    from tests.factories import ServiceFactory

    billing = ServiceFactory(slug="billing", name="billing")
    hold_lock(demo.ops, demo.envs["test"], billing, reason="billing ledger migration")

    assert (
        "billing ledger migration"
        in page_client(demo.dev).get("/what-runs-where/").content.decode()
    )
    for body in (
        page_client(demo.tester).get("/what-runs-where/").content.decode(),
        api_client(demo.tester).get("/api/v1/environments/").content.decode(),
    ):
        assert "billing" not in body


def test_the_confirmation_carries_secrets_sealed_for_this_user_only(demo):
    from apps.catalog.constants import ActionKind
    from apps.runs.services import run_secret_values
    from tests.factories import ActionFactory

    secret = "s3cr3t-never-in-html"
    ActionFactory(
        service=demo.service, slug="migrate", label="Migrate", kind=ActionKind.OTHER,
        form=[{"name": "db_password", "type": "secret", "required": True}],
        environments=[demo.envs["production"]],
    )  # fmt: skip
    url = "/services/hello-web/migrate/production/"

    shown = page_client(demo.dev).post(url, {"db_password": secret}).content.decode()

    assert "Confirm: Migrate hello-web on Production" in shown
    assert secret not in shown
    sealed = re.search(r'name="pushbutton_sealed" value="([^"]+)"', shown).group(1)
    confirm = {"pushbutton_sealed": sealed, "pushbutton_confirmed": "1"}

    # Replayed by someone else, the sealed value opens nothing: the secret is asked again.
    other = page_client(demo.ops).post(url, confirm)
    assert other.status_code == 200
    assert not Run.objects.exists()

    page_client(demo.dev).post(url, confirm)
    run = Run.objects.get()
    assert run_secret_values(run=run) == {"db_password": secret}


def test_the_run_form_shows_a_lock_only_when_there_is_one(demo):
    url = "/services/hello-web/deploy/test/"
    assert 'class="notice' not in page_client(demo.dev).get(url).content.decode()

    hold_lock(demo.ops, demo.envs["test"], reason="Moving the racks")

    html = page_client(demo.dev).get(url).content.decode()
    assert re.search(r'<p class="notice lock" role="status">[^<]*Moving the racks', html)


def test_promote_says_so_when_the_form_changed_since_the_deploy(demo, history):
    history.shipped("test", "1.1.0")
    demo.deploy.form = [*demo.deploy.form, {"name": "region", "type": "string", "required": True}]
    demo.deploy.save()

    response = page_client(demo.dev).post(
        "/services/hello-web/environments/qa/promote/", {"seen": "1.1.0:"}
    )

    assert response.status_code == 400
    assert "The parameters of that deploy no longer fit the form (region:" in (
        response.content.decode()
    )
    assert not Run.objects.filter(environment=demo.envs["qa"]).exists()
