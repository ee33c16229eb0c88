"""Every field of everything Ops curate is in the snapshot the audit diff is made from:
each curated model's fields are walked (through _meta) and a change to any of them
shows in the diff. A new field, or a new curated model, is covered or fails here."""

from datetime import date, datetime, time, timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import models
from django.test import RequestFactory
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership, Team
from apps.audit.admin import AuditedModelAdmin
from apps.audit.services import audit_changes, audit_snapshot
from apps.catalog.models import PlaybookSource
from apps.environments.models import Credential, EnvironmentLock
from apps.notifications.models import Channel, Rule
from tests import factories

pytestmark = pytest.mark.django_db

# Fields whose change is recorded another way, with the reason; nothing else is left out.
RECORDED_ELSEWHERE = {
    (Team, "members"): "each membership is a row of its own (membership.create/delete)",
    (ApiToken, "key_hash"): "a token's key never changes: a new key is a new token",
    **{
        (PlaybookSource, name): "the outcome of the last sync, written by the sync itself "
        "(audited as source.sync), never by Ops"
        for name in ("sync_status", "sync_message", "sync_finished_at", "sync_head")
    },
}


def _snapshot_of(model):
    """How the portal snapshots `model` for its audit rows: its admin's (an audited
    admin's own snapshot), else the accounts services' generic one."""
    model_admin = admin.site._registry.get(model)
    if isinstance(model_admin, AuditedModelAdmin):
        return model_admin.audit_snapshot
    excluded = tuple(name for (m, name) in RECORDED_ELSEWHERE if m is model)
    return lambda obj: audit_snapshot(obj, exclude=excluded)


def _curated_models(user) -> list:
    """Every model Ops edit in the admin (and the memberships edited inline); the logs
    the admin only shows (deliveries, incidents) are not curated."""
    request = RequestFactory().get("/admin/")
    request.user = user
    found = {
        model
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in _APPS and model_admin.has_change_permission(request)
    }
    return sorted({*found, Membership}, key=lambda m: m._meta.label)


_APPS = {"accounts", "catalog", "environments", "runs", "insights", "notifications", "incidents"}


def _instance(model, demo):
    if model is Credential:
        return Credential.objects.create(
            name="deploy-key", kind="password", variable="deploy_password",
            secret_encrypted="x", fingerprint="f",
        )  # fmt: skip
    if model is EnvironmentLock:
        now = timezone.now()
        return EnvironmentLock.objects.create(
            environment=demo.envs["qa"], reason="testing", created_by=demo.ops,
            created_by_name="ops", created_at=now, expires_at=now + timedelta(hours=1),
        )  # fmt: skip
    if model is Channel:
        return Channel.objects.create(name="ops-mail", kind="email", emails="ops@example.com")
    if model is Rule:
        channel = Channel.objects.create(name="ops-chat", kind="email", emails="a@example.com")
        return Rule.objects.create(name="failures", channel=channel, events=[])
    if model is ApiToken:
        return ApiToken.objects.create(user=demo.dev, name="ci", key_hash="a" * 64, prefix="pb_")
    return model.objects.order_by("pk").first()


def _other(field, obj):
    """Another related object than the one `obj` points to (made if there is none)."""
    related = field.related_model
    current = getattr(obj, field.attname) if not field.many_to_many else None
    other = related.objects.exclude(pk=current).order_by("pk").first()
    if other is None and related is Group:
        other = Group.objects.create(name="release managers")
    elif other is None:
        other = getattr(factories, f"{related.__name__}Factory")()
    assert other is not None, f"no other {related.__name__} to point {field} at"
    return other


def _changed_value(field, value):
    if field.choices:
        return next(choice for choice, _ in field.choices if choice != value)
    if isinstance(field, models.BooleanField):
        return not value
    if isinstance(field, models.DateTimeField):
        return (value or timezone.now()) + timedelta(days=1)
    if isinstance(field, models.DateField):
        return (value or date(2026, 1, 1)) + timedelta(days=1)
    if isinstance(field, models.TimeField):
        return time(3, 4) if value != time(3, 4) else time(5, 6)
    if isinstance(field, models.IntegerField | models.FloatField | models.DecimalField):
        return (value or 0) + 1
    if isinstance(field, models.JSONField):
        return {"changed": True} if value != {"changed": True} else []
    if isinstance(value, datetime):
        return value + timedelta(days=1)
    return f"{value or ''}z"


def _change(obj, field):
    if field.many_to_many:
        manager = getattr(obj, field.name)
        existing = list(manager.all())
        if existing:
            manager.remove(existing[0])
        else:
            manager.add(_other(field, obj))
    elif field.is_relation:
        setattr(obj, field.name, _other(field, obj))
    else:
        setattr(obj, field.attname, _changed_value(field, field.value_from_object(obj)))


def test_the_curated_models_are_those_ops_edit(demo):
    names = {m._meta.label for m in _curated_models(demo.ops)}

    assert {"catalog.Action", "catalog.Service", "environments.Environment"} <= names
    assert "runs.Run" not in names  # runs are made by launches, not curated
    assert "notifications.Delivery" not in names  # a log the admin only shows


def test_a_change_to_any_field_of_a_curated_model_is_in_its_audit_diff(demo):
    missed = []
    for model in _curated_models(demo.ops):
        snapshot = _snapshot_of(model)
        first = _instance(model, demo)
        assert first is not None, f"no {model.__name__} to edit"
        for field in [*model._meta.concrete_fields, *model._meta.many_to_many]:
            if field.primary_key or (model, field.name) in RECORDED_ELSEWHERE:
                continue
            obj = model.objects.get(pk=first.pk)
            before = snapshot(obj)
            _change(obj, field)
            if not audit_changes(before, snapshot(obj)):
                missed.append(f"{model._meta.label}.{field.name}")
    assert not missed, f"changes not in the audit diff: {', '.join(missed)}"


def test_an_action_description_edit_is_in_its_diff(demo):
    snapshot = _snapshot_of(type(demo.deploy))
    before = snapshot(demo.deploy)
    demo.deploy.description = "Ships the build; takes a minute."

    changes = audit_changes(before, snapshot(demo.deploy))

    assert changes["description"][1] == "Ships the build; takes a minute."


def test_the_admin_records_an_action_description_edit(demo, ops_client):
    from apps.audit.models import AuditEvent

    action = demo.deploy
    page = ops_client.get(f"/admin/catalog/action/{action.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data["environments"] = [env.pk for env in action.environments.all()]
    data["form"] = form["form"].value()
    data["description"] = "Deploys hello-web. Takes about a minute."
    data = {k: ("" if v is None else v) for k, v in data.items()}

    response = ops_client.post(f"/admin/catalog/action/{action.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    row = AuditEvent.objects.filter(verb="action.update").latest("id")
    assert row.details["changes"]["description"][1] == "Deploys hello-web. Takes about a minute."
