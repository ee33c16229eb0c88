"""`manage.py load_demo`, as `make run` calls it."""

import io

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.catalog.models import Action, Service
from apps.environments.models import Environment

pytestmark = pytest.mark.django_db


def _load():
    call_command("load_demo", stdout=io.StringIO())


def test_it_loads_hello_web_and_records_what_it_created():
    _load()

    service = Service.objects.get(slug="hello-web")
    assert sorted(Action.objects.filter(service=service).values_list("slug", flat=True)) == [
        "deploy", "rollback", "smoke-test",
    ]  # fmt: skip
    assert list(Environment.objects.values_list("slug", flat=True)) == ["test", "qa", "production"]
    created = set(AuditEvent.objects.filter(via="cli").values_list("verb", flat=True))
    assert {"service.create", "action.create", "environment.create"} <= created
    deploy = AuditEvent.objects.get(verb="action.create", object_repr__contains="Deploy")
    assert deploy.details["changes"]["timeout"] == [None, 600]


def test_loading_it_again_changes_nothing_and_records_nothing():
    _load()
    rows = AuditEvent.objects.count()

    _load()

    # Only the sync of the playbook source is recorded again, and it found nothing new.
    new = list(AuditEvent.objects.order_by("id")[rows:])
    assert [event.verb for event in new] == ["source.sync"]
    assert new[0].details["new_versions"] == []
    assert Action.objects.count() == 3
