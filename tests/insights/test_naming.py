"""Rollbacks and promotions named as such everywhere (the run's title, the runs list,
what runs where, the history), the runs list's duration, commit and action filter, and
the catalog's Promote on an environment with the promotion rule."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs.templatetags.run_tags import duration
from tests.clients import page_client

pytestmark = pytest.mark.django_db


def _rolled_back(history):
    history.shipped("test", "2.0.0")
    broken = history.shipped("test", "2.1.0")
    back = history.deploy("test", "2.0.0", rollback_of=broken, reason="2.1.0 breaks the header")
    return broken, back


def _tr(html: str, attribute: str) -> str:
    return re.search(rf"<tr {attribute}.*?</tr>", html, re.S).group(0)


def test_a_rollback_and_a_promotion_have_their_own_titles(demo, history):
    _, back = _rolled_back(history)
    history.verify("test", "2.0.0")
    promoted = history.deploy("qa", "2.0.0", promoted_from=demo.envs["test"])
    plain = history.deploy("qa", "2.2.0")

    assert back.title == "Roll back hello-web on Test to 2.0.0"
    assert promoted.title == "Promote hello-web 2.0.0 from Test to QA"
    assert plain.title == "Deploy hello-web on QA"
    assert str(back) == f"Run #{back.pk}: Roll back hello-web on Test to 2.0.0"
    html = page_client(demo.dev).get(back.get_absolute_url()).content.decode()
    assert f">Run #{back.pk}: Roll back hello-web on Test to 2.0.0</h1>" in html


def test_the_runs_list_marks_rollbacks_and_promotions(demo, history):
    broken, back = _rolled_back(history)
    history.verify("test", "2.0.0")
    promoted = history.deploy("qa", "2.0.0", promoted_from=demo.envs["test"])

    html = page_client(demo.dev).get("/runs/").content.decode()

    row = _tr(html, f'data-run="{back.pk}"')
    assert '<span class="badge rollback">Rollback</span> of' in row
    assert f"#{broken.pk}</a> (2.1.0)" in row
    assert '<span class="badge promotion">Promotion</span> from Test' in _tr(
        html, f'data-run="{promoted.pk}"'
    )


def test_what_runs_where_and_the_history_name_the_rollback(demo, history):
    _, back = _rolled_back(history)
    client = page_client(demo.dev)

    matrix = client.get("/what-runs-where/").content.decode()
    cell = re.search(r'<td data-environment="test".*?</td>', matrix, re.S).group(0)
    assert '<span class="badge rollback">Rollback</span>' in cell
    service = client.get("/services/hello-web/").content.decode()
    history_row = re.search(rf'<tr class="is-rollback">\s*<td><a href="/runs/{back.pk}/"', service)
    assert history_row is not None


def test_what_runs_where_names_the_rollback_and_the_promotion_in_the_same_queries(demo, history):
    """The page reads of each run only what it shows: naming what a run rolled back, or
    where it was promoted from, costs no query of its own."""
    history.shipped("test", "1.0.0")
    history.deploy("qa", "1.0.0")
    client = page_client(demo.dev)

    def page() -> tuple[str, int]:
        client.get("/what-runs-where/")  # the session and the user's rights read once before
        with CaptureQueriesContext(connection) as captured:
            html = client.get("/what-runs-where/").content.decode()
        return html, len(captured)

    _, plain = page()
    broken, _ = _rolled_back(history)
    history.verify("test", "2.0.0")
    history.deploy("qa", "2.0.0", promoted_from=demo.envs["test"])
    html, named = page()

    cells = dict(re.findall(r'<td data-environment="(\w+)"[^>]*>(.*?)</td>', html, re.S))
    assert f'<span class="badge rollback">Rollback</span> of #{broken.pk} (2.1.0)' in cells["test"]
    assert '<span class="badge promotion">Promotion</span> from Test' in cells["qa"]
    assert '<time datetime="' in cells["qa"]
    assert named == plain


def test_the_runs_list_shows_the_duration_and_the_commit(demo, history):
    run = history.deploy("test", "1.0.0", source_commit="0123456789abcdef0123456789abcdef01234567")
    run.finished_at = run.started_at + timedelta(minutes=4, seconds=12)
    run.save()

    row = _tr(page_client(demo.dev).get("/runs/").content.decode(), f'data-run="{run.pk}"')

    assert '<td data-label="Duration" class="duration">4 min 12 s</td>' in row
    assert ">0123456789</code>" in row


def test_the_runs_list_filters_by_action(demo, history):
    deploy = history.deploy("test", "1.0.0")
    smoke = history.verify("test", "1.0.0")
    client = page_client(demo.dev)

    html = client.get("/runs/", {"action": "smoke-test"}).content.decode()

    assert f'data-run="{smoke.pk}"' in html
    assert f'data-run="{deploy.pk}"' not in html
    assert '<option value="smoke-test" selected>Smoke test</option>' in html


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (3, "3.0 s"),
        (42.5, "42 s"),
        (252, "4 min 12 s"),
        (3900, "1 h 5 min"),
        (108000, "1 d 6 h"),
        (None, ""),
    ],
)
def test_durations_read_as_people_write_them(seconds, shown):
    assert duration(None if seconds is None else timedelta(seconds=seconds)) == shown


def test_the_catalog_offers_promote_where_the_rule_holds(demo, history):
    history.shipped("test", "1.1.0")

    html = page_client(demo.dev).get("/").content.decode()

    qa = re.search(r'<tr data-environment="qa">.*?</tr>', html, re.S).group(0)
    assert "Promote 1.1.0 from Test</a>" in qa
    assert "button primary promote" in qa
    assert "kind-deploy" not in qa  # Deploy is there, but not as the primary button
    test = re.search(r'<tr data-environment="test">.*?</tr>', html, re.S).group(0)
    assert "kind-deploy" in test and "Promote" not in test


def test_the_catalog_offers_no_promote_of_a_rolled_back_version(demo, history):
    _rolled_back(history)

    html = page_client(demo.dev).get("/").content.decode()

    qa = re.search(r'<tr data-environment="qa">.*?</tr>', html, re.S).group(0)
    assert "Promote" not in qa
