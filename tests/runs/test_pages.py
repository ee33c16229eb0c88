"""The portal pages, through the Django test client: catalog, action form, run, runs."""

import re
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.catalog.constants import ActionKind
from apps.environments.constants import WhenLocked
from apps.runs import selectors
from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent
from apps.runs.views.lists import RunPaginator
from tests.clients import page_client
from tests.factories import (
    PASSWORD,
    ActionFactory,
    PlaybookVersionFactory,
    RunFactory,
    UserFactory,
)

SECRET = "hunter2-do-not-show"
FORM_URL = "/services/hello-web/deploy/{}/"


def _run(demo, *, action=None, environment="test", user=None, **fields) -> Run:
    """RunFactory with the demo's defaults: dev's deploy of hello-web on test."""
    return RunFactory(
        action=action or demo.deploy,
        environment=demo.envs[environment],
        requested_by=user or demo.dev,
        **fields,
    )


def _events(run, *lines):
    """One stored event per output line, counters from 1."""
    RunEvent.objects.bulk_create(
        RunEvent(
            run=run,
            counter=n,
            event="runner_on_ok",
            stdout=text,
            start_line=n - 1,
            end_line=n,
        )
        for n, text in enumerate(lines, start=1)
    )
    Run.objects.filter(pk=run.pk).update(line_count=len(lines), event_count=len(lines))
    run.refresh_from_db()


def _row(html: str, environment: str) -> str:
    """The catalog table row of one environment."""
    match = re.search(rf'<tr data-environment="{environment}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {environment}"
    return match.group(1)


def _run_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td><a href="/runs/(\d+)/">#\d+</a></td>', html)]


@pytest.fixture
def secret_action(demo):
    return ActionFactory(
        service=demo.service,
        slug="migrate",
        label="Migrate",
        kind=ActionKind.OTHER,  # not a deploy: the promotion rule does not apply
        form=[
            {"name": "version", "type": "string", "required": True},
            {"name": "db_password", "type": "secret", "required": True},
        ],
        version_field="version",
        environments=list(demo.envs.values()),
    )


# --- signing in ---------------------------------------------------------------
def test_it_shows_the_sign_in_page(db):
    response = Client().get("/accounts/login/")

    assert response.status_code == 200
    assert b'name="login"' in response.content
    assert b'name="password"' in response.content


def test_it_signs_in_with_a_password(dev):
    client = Client()

    response = client.post("/accounts/login/", {"login": "dev", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_refuses_a_wrong_password(dev):
    client = Client()

    response = client.post("/accounts/login/", {"login": "dev", "password": "wrong"})

    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_it_has_closed_sign_up(db):
    client = Client()

    page = client.get("/accounts/signup/")
    client.post(
        "/accounts/signup/",
        {
            "username": "mallory",
            "email": "mallory@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert b"Sign Up Closed" in page.content
    assert b'name="password1"' not in page.content
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.parametrize(
    "path",
    ["/", "/runs/", "/runs/1/", "/runs/1/log/", "/runs/1/again/", "/services/hello-web/deploy/qa/"],
)
def test_it_sends_anonymous_users_to_sign_in(demo, path):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_it_does_not_launch_for_anonymous_users(demo):
    response = Client().post(FORM_URL.format("test"), {"version": "1.2.3"})

    assert response.status_code == 302
    assert not Run.objects.exists()


# --- catalog --------------------------------------------------------------------
def test_it_shows_a_deploy_button_per_environment(demo):
    response = page_client(demo.dev).get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="service-hello-web"' in html
    assert 'href="/services/hello-web/">History, Promote and Roll back of hello-web' in html
    for env in ("test", "qa", "production"):
        row = _row(html, env)
        assert f'href="{FORM_URL.format(env)}">Deploy</a>' in row
        # Rolling back lives on the service page, where it says what it will change.
        assert "/rollback/" not in row
        assert f'href="/services/hello-web/smoke-test/{env}/">Smoke test</a>' in row
        assert "none yet" in row


def test_it_shows_the_version_now_on_each_environment(demo):
    now = timezone.now()
    deployed = _run(
        demo,
        environment="qa",
        status=RunStatus.SUCCESSFUL,
        version="1.2.3",
        finished_at=now - timedelta(hours=1),
    )
    # Neither a failed deploy nor a dry run changes what runs there.
    _run(demo, environment="qa", status=RunStatus.FAILED, version="1.3.0", finished_at=now)
    _run(
        demo,
        environment="qa",
        status=RunStatus.SUCCESSFUL,
        version="1.4.0",
        check_mode=True,
        finished_at=now,
    )

    html = page_client(demo.dev).get("/").content.decode()

    qa = _row(html, "qa")
    assert f'<a href="/runs/{deployed.pk}/">1.2.3</a>' in qa
    assert "by dev" in qa
    assert "1.3.0" not in qa and "1.4.0" not in qa
    assert "none yet" in _row(html, "test")
    assert "1.2.3" not in _row(html, "production")


def test_it_shows_the_latest_successful_deploy(demo):
    now = timezone.now()
    _run(demo, status=RunStatus.SUCCESSFUL, version="1.2.3", finished_at=now - timedelta(days=1))
    _run(demo, status=RunStatus.SUCCESSFUL, version="1.2.4", finished_at=now)

    row = _row(page_client(demo.dev).get("/").content.decode(), "test")

    assert "1.2.4" in row
    assert "1.2.3" not in row


def test_it_shows_an_auditor_no_buttons(demo):
    response = page_client(demo.auditor).get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="service-hello-web"' in html
    assert not re.search(r'href="/services/hello-web/[a-z-]+/[a-z]+/', html)  # no action form
    assert ">Deploy</a>" not in html


# --- action form ------------------------------------------------------------------
def test_it_renders_the_action_form(demo):
    response = page_client(demo.dev).get(FORM_URL.format("qa"))

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<input type="text" name="version"[^>]*required', html)
    assert "Release number, e.g. 1.0.0" in html
    assert 'name="check"' in html
    assert "Deploy hello-web on QA</button>" in html
    assert demo.deploy.playbook_version.commit[:10] in html


def test_it_shows_a_bad_version_beside_the_field(demo):
    response = page_client(demo.dev).post(FORM_URL.format("test"), {"version": "latest"})

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<p class="error" id="version-error">Must match the pattern \^\\d\+', html), (
        html
    )
    assert html.count("Must match the pattern") == 1
    assert 'value="latest"' in html
    assert not Run.objects.exists()
    assert AuditEvent.objects.filter(verb="run.refused", via="web").count() == 1


def test_it_never_shows_a_secret_back_in_the_form(demo, secret_action):
    response = page_client(demo.dev).post(
        "/services/hello-web/migrate/test/", {"version": "", "db_password": SECRET}
    )

    assert response.status_code == 200
    assert b'id="version-error">This field is required.' in response.content
    assert SECRET not in response.content.decode()
    assert not Run.objects.exists()


def test_it_shows_why_an_unapproved_action_cannot_run(demo):
    ActionFactory(
        service=demo.service,
        slug="migrate",
        label="Migrate",
        playbook_version=PlaybookVersionFactory(approved_at=None),
        environments=[demo.envs["test"]],
    )

    response = page_client(demo.dev).post("/services/hello-web/migrate/test/", {})

    assert response.status_code == 200
    assert b"The playbook version of Migrate is not approved." in response.content
    assert not Run.objects.exists()


def test_it_launches_and_shows_the_run(demo):
    response = page_client(demo.dev).post(FORM_URL.format("test"), {"version": "1.2.3"})

    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.status == RunStatus.QUEUED
    assert run.version == "1.2.3"
    assert run.requested_by == demo.dev
    assert run.check_mode is False
    assert AuditEvent.objects.get(verb="run.requested").via == "web"


def test_it_launches_a_dry_run(demo):
    page_client(demo.dev).post(FORM_URL.format("test"), {"version": "1.2.3", "check": "1"})

    assert Run.objects.get().check_mode is True


def test_it_refuses_the_form_to_an_auditor(demo):
    client = page_client(demo.auditor)

    page = client.get(FORM_URL.format("test"))
    posted = client.post(FORM_URL.format("test"), {"version": "1.2.3"})

    assert page.status_code == 403
    assert b"Auditors can read everything but run nothing." in page.content
    assert b'name="version"' not in page.content
    assert posted.status_code == 403
    assert not Run.objects.exists()


def test_it_answers_404_for_an_unknown_action_or_environment(demo):
    client = page_client(demo.dev)

    assert client.get("/services/hello-web/destroy/test/").status_code == 404
    assert client.get("/services/hello-web/deploy/moon/").status_code == 404
    assert client.get("/services/nope/deploy/test/").status_code == 404


@pytest.mark.parametrize("rerun_of", ["abc", "\u00b2", "\u0663"])  # "²" and "٣" pass isdigit()
def test_it_ignores_a_malformed_rerun_of(demo, rerun_of):
    response = page_client(demo.dev).post(
        FORM_URL.format("test"), {"version": "1.2.3", "rerun_of": rerun_of}
    )

    assert response.status_code == 302
    assert Run.objects.get().rerun_of is None


# --- run page -------------------------------------------------------------------
def test_it_shows_a_run_with_its_secret_masked(demo, secret_action):
    client = page_client(demo.dev)
    launched = client.post(
        "/services/hello-web/migrate/test/", {"version": "2.0.0", "db_password": SECRET}
    )
    assert launched.status_code == 302
    run = Run.objects.get()
    version = secret_action.playbook_version

    response = client.get(launched["Location"])

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Run #{run.pk}: Migrate hello-web on Test" in html
    assert 'data-status="queued">Queued</span>' in html
    assert "<dt>Requested by</dt><dd>dev</dd>" in html
    assert '<th scope="row">version</th><td><code>2.0.0</code></td>' in html
    assert '<th scope="row">db_password</th><td>••••</td>' in html
    assert SECRET not in html
    assert version.commit[:10] in html
    assert version.content_hash in html


def test_it_shows_the_output_and_the_buttons_of_a_running_run(demo):
    run = _run(
        demo, status=RunStatus.RUNNING, parameters={"version": "1.2.3"}, started_at=timezone.now()
    )
    _events(run, "PLAY [Deploy hello-web]", "TASK [Install release]", "ok: [localhost]")

    html = page_client(demo.dev).get(f"/runs/{run.pk}/").content.decode()

    assert 'data-status="running">Running</span>' in html
    assert "PLAY [Deploy hello-web]" in html
    assert "TASK [Install release]" in html
    assert 'id="L3"' in html
    assert f'action="/runs/{run.pk}/cancel/"' in html
    assert ">Cancel</button>" in html
    # It holds the deploy lock a run again would need: not offered until it ends.
    assert f'href="/runs/{run.pk}/again/"' not in html
    # The live log asks only for what came after the last event shown (and says it
    # shows the run started: the facts are not sent again for that).
    assert f'hx-get="/runs/{run.pk}/log/?after=3&amp;started=1"' in html


def test_it_offers_no_cancel_for_a_finished_run(demo):
    run = _run(demo, status=RunStatus.SUCCESSFUL, finished_at=timezone.now(), rc=0)

    html = page_client(demo.dev).get(f"/runs/{run.pk}/").content.decode()

    assert 'data-status="successful">Successful</span>' in html
    assert ">Cancel</button>" not in html
    assert "Run again" in html
    assert 'id="log-poller"' not in html


def test_it_offers_no_cancel_to_another_developer(demo):
    run = _run(demo, status=RunStatus.RUNNING)
    other = UserFactory(username="dev2")

    html = page_client(other).get(f"/runs/{run.pk}/").content.decode()

    assert ">Cancel</button>" not in html


def test_it_offers_an_auditor_neither_cancel_nor_run_again(demo):
    run = _run(demo, status=RunStatus.RUNNING)

    response = page_client(demo.auditor).get(f"/runs/{run.pk}/")

    assert response.status_code == 200
    assert b">Cancel</button>" not in response.content
    assert b"Run again" not in response.content


def test_it_answers_404_for_a_missing_run(demo):
    assert page_client(demo.dev).get("/runs/999999/").status_code == 404


def test_it_cancels_a_queued_run_from_its_page(demo):
    run = _run(demo)

    response = page_client(demo.dev).post(f"/runs/{run.pk}/cancel/")

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.canceled_by_name == "dev"


def test_it_refuses_a_cancel_by_another_developer(demo):
    run = _run(demo)

    # tester's team sees hello-web on test, but tester did not start the run.
    response = page_client(demo.tester).post(f"/runs/{run.pk}/cancel/", follow=True)

    assert "Only the person who started a run, or Ops, can cancel it." in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_a_cancel_of_a_run_one_may_not_see_reads_as_no_such_run(demo):
    run = _run(demo)

    response = page_client(UserFactory(username="dev2")).post(f"/runs/{run.pk}/cancel/")

    assert response.status_code == 404
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_it_returns_only_the_log_lines_after_a_counter(demo):
    run = _run(demo, status=RunStatus.RUNNING)
    _events(run, "first line", "second line", "third line", "fourth line")

    response = page_client(demo.dev).get(reverse("runs:log", args=[run.pk]) + "?after=2")

    assert response.status_code == 200
    html = response.content.decode()
    assert "first line" not in html
    assert "second line" not in html
    assert "third line" in html
    assert "fourth line" in html
    assert html.index("third line") < html.index("fourth line")
    assert f'hx-get="/runs/{run.pk}/log/?after=4"' in html


def test_it_keeps_polling_an_ended_run_while_events_without_output_remain(demo, monkeypatch):
    monkeypatch.setattr(selectors.run_log_after, "__kwdefaults__", {"limit": 3})
    run = _run(demo, status=RunStatus.SUCCESSFUL)
    _events(run, "", "", "", "", "last line")
    client = page_client(demo.dev)

    first = client.get(f"/runs/{run.pk}/log/?after=0").content.decode()
    assert f'hx-get="/runs/{run.pk}/log/?after=3"' in first

    second = client.get(f"/runs/{run.pk}/log/?after=3").content.decode()
    assert "last line" in second
    assert "hx-get" not in second


def test_it_returns_no_lines_when_nothing_is_new(demo):
    run = _run(demo, status=RunStatus.RUNNING)
    _events(run, "first line", "second line")

    html = page_client(demo.dev).get(f"/runs/{run.pk}/log/?after=2").content.decode()

    assert "line" not in html.replace("hx-get", "")
    assert f'hx-get="/runs/{run.pk}/log/?after=2"' in html


def test_it_escapes_the_output(demo):
    run = _run(demo, status=RunStatus.RUNNING)
    _events(run, "<script>alert(1)</script>")

    html = page_client(demo.dev).get(f"/runs/{run.pk}/").content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- run again -------------------------------------------------------------------
def test_it_prefills_run_again_but_never_the_secret(demo, secret_action):
    client = page_client(demo.dev)
    client.post("/services/hello-web/migrate/qa/", {"version": "2.0.0", "db_password": SECRET})
    run = Run.objects.get()

    again = client.get(f"/runs/{run.pk}/again/")

    assert again.status_code == 302
    location = again["Location"]
    assert location.startswith("/services/hello-web/migrate/qa/?")
    assert "version=2.0.0" in location
    assert f"rerun_of={run.pk}" in location
    assert "db_password" not in location
    form = client.get(location).content.decode()
    assert re.search(r'<input type="text" name="version" value="2.0.0"', form)
    password = re.search(r'<input type="password" name="db_password"[^>]*>', form).group(0)
    assert "value=" not in password
    assert SECRET not in form
    assert "••••" not in form
    assert f'<input type="hidden" name="rerun_of" value="{run.pk}">' in form


def test_it_links_a_run_again_to_the_run_it_repeats(demo):
    first = _run(demo, status=RunStatus.FAILED, parameters={"version": "1.2.3"})
    client = page_client(demo.dev)

    response = client.post(FORM_URL.format("test"), {"version": "1.2.3", "rerun_of": first.pk})

    again = Run.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/runs/{again.pk}/"
    assert again.rerun_of == first
    assert (
        f'href="/runs/{first.pk}/">#{first.pk}</a>'
        in client.get(f"/runs/{again.pk}/").content.decode()
    )


# --- runs list ----------------------------------------------------------------------
def test_it_lists_runs_newest_first_25_a_page(demo):
    runs = [_run(demo, version=f"1.0.{n}", status=RunStatus.SUCCESSFUL) for n in range(30)]
    client = page_client(demo.dev)

    first = client.get("/runs/").content.decode()
    second = client.get("/runs/?page=2").content.decode()

    newest_first = [run.pk for run in reversed(runs)]
    assert _run_ids(first) == newest_first[:25]
    assert _run_ids(second) == newest_first[25:]
    assert "Page 1 of 2" in first
    assert 'href="?page=2">Older' in first
    assert 'href="?page=1">← Newer' in second
    assert "Older" not in second


def test_past_its_cap_the_list_counts_no_further_and_says_how_to_find_older_runs(demo, monkeypatch):
    runs = [_run(demo, version=f"1.0.{n}", status=RunStatus.SUCCESSFUL) for n in range(30)]
    # The cap is 10,000 runs (400 pages); 25 (a page) stand for it here.
    monkeypatch.setattr(RunPaginator, "CAP", 25)
    client = page_client(demo.dev)

    first = client.get("/runs/").content.decode()
    past = client.get("/runs/?page=2").content.decode()  # past the cap: its last page

    assert _run_ids(first) == [run.pk for run in reversed(runs)][:25]
    assert "Page 1 of 1+" in first
    assert "Older →" not in first
    assert "narrow the list with the filters above" in first
    assert _run_ids(past) == _run_ids(first)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("service=other", ["other"]),
        ("environment=qa", ["qa"]),
        ("status=failed", ["failed"]),
        ("user=ops", ["ops"]),
        ("environment=qa&status=failed", []),
        ("", ["other", "qa", "failed", "ops", "plain"]),
    ],
)
def test_it_filters_runs(demo, query, expected):
    other = ActionFactory(service__slug="other", environments=[demo.envs["test"]])
    made = {
        "plain": _run(demo),
        "ops": _run(demo, user=demo.ops, status=RunStatus.SUCCESSFUL),
        "failed": _run(demo, status=RunStatus.FAILED),
        "qa": _run(demo, environment="qa"),
        "other": _run(demo, action=other),
    }

    html = page_client(demo.dev).get(f"/runs/?{query}").content.decode()

    assert _run_ids(html) == [made[name].pk for name in expected]
    if not expected:
        assert "No runs match." in html


def test_it_keeps_the_filters_across_pages(demo):
    ci = UserFactory(username="ci+bot")
    for _ in range(30):
        _run(demo, user=ci, status=RunStatus.SUCCESSFUL)
    _run(demo)
    client = page_client(demo.dev)

    first = client.get("/runs/", {"user": "ci+bot"}).content.decode()
    older = re.search(r'<a href="([^"]+)">Older', first).group(1).replace("&amp;", "&")
    second = client.get(f"/runs/{older}").content.decode()

    assert len(_run_ids(first)) == 25
    assert len(_run_ids(second)) == 5
    assert 'value="ci+bot"' in first


def test_a_launch_waiting_for_a_confirmation_keeps_no_secret_in_the_session(demo, secret_action):
    from allauth.mfa.totp.internal.auth import (
        TOTP,
        format_hotp_value,
        generate_totp_secret,
        hotp_value,
    )
    from django.contrib.sessions.models import Session
    from django.core.cache import cache

    cache.clear()  # codes used by earlier tests are remembered there
    demo.envs["test"].require_mfa = True
    demo.envs["test"].save()
    totp = generate_totp_secret()
    TOTP.activate(demo.dev, totp)
    client = page_client(demo.dev)
    form_url = "/services/hello-web/migrate/test/"

    asked = client.post(form_url, {"version": "1.0.0", "db_password": SECRET})

    assert asked.status_code == 302 and "/reauthenticate/" in asked["Location"]
    stored = [s.session_data + str(s.get_decoded()) for s in Session.objects.all()]
    assert stored and not any(SECRET in data for data in stored)
    # After the code, the form comes back asking for the secret again.
    code = format_hotp_value(hotp_value(totp, int(time.time()) // 30))
    replayed = client.post("/accounts/2fa/reauthenticate/", {"code": code, "next": form_url})
    assert replayed.status_code == 200
    assert b'id="db_password-error">This field is required.' in replayed.content
    assert not Run.objects.exists()


def test_it_offers_no_run_again_that_the_deploy_lock_would_refuse(demo):
    done = _run(demo, status=RunStatus.SUCCESSFUL, finished_at=timezone.now(), rc=0)
    holder = _run(demo, status=RunStatus.RUNNING, started_at=timezone.now())
    client = page_client(demo.dev)

    html = client.get(f"/runs/{done.pk}/").content.decode()
    assert f'href="/runs/{done.pk}/again/"' not in html
    assert f'Run again once <a href="/runs/{holder.pk}/">run #{holder.pk}</a> ends' in html

    # Where deploys wait in line for the lock, it is offered: it waits its turn.
    demo.envs["test"].when_locked = WhenLocked.QUEUE
    demo.envs["test"].save()
    assert f'href="/runs/{done.pk}/again/"' in client.get(f"/runs/{done.pk}/").content.decode()


def test_a_required_choice_arrives_with_nothing_chosen(demo):
    ActionFactory(
        service=demo.service,
        slug="resize",
        label="Resize",
        kind=ActionKind.OTHER,
        form=[
            {"name": "size", "type": "choice", "required": True, "choices": ["small", "large"]},
            {"name": "zone", "type": "choice", "choices": ["a", "b"], "default": "b"},
        ],
        environments=list(demo.envs.values()),
    )
    client = page_client(demo.dev)

    html = client.get("/services/hello-web/resize/test/").content.decode()
    refused = client.post("/services/hello-web/resize/test/", {"zone": "b"})

    size = re.search(r'<select name="size".*?</select>', html, re.S).group(0)
    assert re.findall(r"<option[^>]*>[^<]*</option>", size) == [
        '<option value="" selected>Choose…</option>',
        '<option value="small">small</option>',
        '<option value="large">large</option>',
    ]
    zone = re.search(r'<select name="zone".*?</select>', html, re.S).group(0)
    assert '<option value="b" selected>b</option>' in zone and "Choose…" not in zone
    assert b'id="size-error">This field is required.' in refused.content
    assert not Run.objects.exists()
