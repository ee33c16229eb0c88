"""Ops set up teams and grants in the admin; every change is in the audit log; auditors
only read; nobody makes themselves a superuser."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.constants import SEE_WORKERS
from apps.accounts.models import ApiToken, Grant, Membership, Right, Role, Team, User
from apps.accounts.permissions import PORTAL_APPS, can_manage_tokens_of, role_permissions
from apps.audit.constants import READ_LOG, Outcome
from apps.audit.models import AuditEvent
from tests.clients import page_client
from tests.factories import TeamFactory, UserFactory

FORM = "/services/hello-web/deploy/{}/"


def _inline(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows):
        data.update({f"{prefix}-{n}-{name}": value for name, value in row.items()})
    return data


def test_a_new_ops_user_sets_up_a_team_and_its_grants(world):
    ops = UserFactory(username="new-ops", role=Role.OPS, is_staff=True)
    newcomer = UserFactory(username="newcomer")
    client = page_client(ops)
    assert client.get(FORM.format("qa")).status_code == 403  # Ops run only through grants
    assert page_client(newcomer).get(FORM.format("qa")).status_code == 403

    response = client.post(
        "/admin/accounts/team/add/",
        {
            "name": "Checkout",
            "slug": "checkout",
            "description": "",
            "sso_group": "",
            **_inline("memberships", [{"user": newcomer.pk}]),
            **_inline(
                "grants",
                [
                    {"service": world.hello.pk, "environment": world.envs["qa"].pk, "right": "run"},
                    {"service": "", "environment": world.envs["production"].pk, "right": "view"},
                ],
            ),
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    team = Team.objects.get(slug="checkout")
    assert list(team.members.all()) == [newcomer]
    assert team.grants.count() == 2
    # The newcomer may now run hello-web on QA, and only there.
    newcomer_client = page_client(newcomer)
    assert newcomer_client.get(FORM.format("qa")).status_code == 200
    assert newcomer_client.get(FORM.format("test")).status_code == 403
    assert newcomer_client.get(FORM.format("production")).status_code == 403
    # Every change is in the audit log, by whom, through the admin, field by field.
    verbs = ("team.create", "membership.create", "grant.create")
    rows = {
        row.verb: row for row in AuditEvent.objects.filter(actor_name="new-ops", verb__in=verbs)
    }
    assert set(rows) == set(verbs)
    assert all(row.via == "admin" for row in rows.values())
    assert rows["team.create"].details["changes"]["slug"] == [None, "checkout"]
    assert rows["membership.create"].details["user"] == "newcomer"
    grants = AuditEvent.objects.filter(verb="grant.create", actor_name="new-ops")
    assert {(g.details["service"], g.environment, g.details["right"]) for g in grants} == {
        ("hello-web", "qa", "run"),
        ("(every service)", "production", "view"),
    }


def test_changing_and_deleting_a_grant_is_recorded(world):
    client = page_client(world.users["ops"])
    grant = Grant.objects.get(team=world.teams["web"], environment=world.envs["qa"])

    changed = client.post(
        f"/admin/accounts/grant/{grant.pk}/change/",
        {"team": grant.team_id, "service": grant.service_id,
         "environment": grant.environment_id, "right": "view"},
    )  # fmt: skip
    deleted = client.post(f"/admin/accounts/grant/{grant.pk}/delete/", {"post": "yes"})

    assert changed.status_code == 302 and deleted.status_code == 302
    assert not Grant.objects.filter(pk=grant.pk).exists()
    update = AuditEvent.objects.get(verb="grant.update")
    assert update.details["changes"] == {"right": ["run", "view"]}
    delete = AuditEvent.objects.get(verb="grant.delete")
    assert (delete.details["team"], delete.environment) == ("web", "qa")


def test_removing_a_member_in_the_admin_is_recorded(world):
    team = world.teams["release"]
    memberships = list(team.memberships.order_by("pk"))
    rows = [{"id": m.pk, "team": team.pk, "user": m.user_id} for m in memberships]
    rows[0]["DELETE"] = "on"
    grants = [
        {"id": g.pk, "team": team.pk, "service": g.service_id or "",
         "environment": g.environment_id, "right": g.right}
        for g in team.grants.order_by("pk")
    ]  # fmt: skip

    response = page_client(world.users["ops"]).post(
        f"/admin/accounts/team/{team.pk}/change/",
        {"name": team.name, "slug": team.slug, "description": "", "sso_group": "",
         **_inline("memberships", rows, initial=len(rows)),
         **_inline("grants", grants, initial=len(grants))},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    assert not Membership.objects.filter(pk=memberships[0].pk).exists()
    row = AuditEvent.objects.get(verb="membership.delete")
    assert row.details["user"] == memberships[0].user.username


def test_a_team_needs_a_unique_sso_group(world):
    world.teams["web"].sso_group = "devs"
    world.teams["web"].save()

    response = page_client(world.users["ops"]).post(
        "/admin/accounts/team/add/",
        {"name": "Other", "slug": "other", "sso_group": "devs",
         **_inline("memberships", []), **_inline("grants", [])},
    )  # fmt: skip

    assert response.status_code == 200
    assert "SSO group" in response.content.decode()
    assert not Team.objects.filter(slug="other").exists()


def test_ops_curate_the_catalog_without_being_superusers(world):
    client = page_client(world.users["ops"])

    for path in (
        "/admin/catalog/service/add/",
        "/admin/catalog/playbooksource/add/",
        "/admin/environments/environment/add/",
        "/admin/accounts/user/add/",
    ):
        assert client.get(path).status_code == 200, path
    # What they only read: the audit log is nobody's to change.
    assert client.get("/admin/audit/auditevent/").status_code in (200, 302, 404)


def test_ops_cannot_make_anyone_a_superuser(world):
    ops = world.users["ops"]
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    client = page_client(ops)

    page = client.get(f"/admin/accounts/user/{ops.pk}/change/").content.decode()
    client.post(
        f"/admin/accounts/user/{ops.pk}/change/",
        {"username": ops.username, "email": ops.email, "role": "ops", "is_active": "on",
         "is_staff": "on", "is_superuser": "on", "date_joined_0": "2026-01-01",
         "date_joined_1": "00:00:00", **_inline("memberships", [])},
    )  # fmt: skip

    assert 'name="is_superuser"' not in page
    ops.refresh_from_db()
    assert not ops.is_superuser
    # A superuser's account is theirs: Ops may look, not change.
    changed = client.post(
        f"/admin/accounts/user/{root.pk}/change/",
        {"username": "hijacked", "role": "ops", "is_active": "on", "date_joined_0": "2026-01-01",
         "date_joined_1": "00:00:00", **_inline("memberships", [])},
    )  # fmt: skip
    assert changed.status_code == 403
    assert User.objects.filter(username="root").exists()


def test_a_role_change_is_recorded(world):
    member = world.users["member"]
    root = UserFactory(username="root", is_superuser=True, is_staff=True)

    response = page_client(root).post(
        f"/admin/accounts/user/{member.pk}/change/",
        {"username": member.username, "email": member.email, "role": "auditor",
         "is_active": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
         **_inline("memberships", [])},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    row = AuditEvent.objects.get(verb="user.update")
    assert row.details["changes"]["role"] == ["developer", "auditor"]
    assert User.objects.get(pk=member.pk).role == Role.AUDITOR


@pytest.mark.parametrize(
    "path",
    ["/admin/accounts/team/", "/admin/accounts/grant/", "/admin/catalog/service/",
     "/admin/environments/environment/", "/admin/accounts/user/"],
)  # fmt: skip
def test_an_auditor_reads_the_admin(world, path):
    assert page_client(world.users["auditor"]).get(path).status_code == 200


def test_an_auditor_changes_nothing_and_the_attempt_is_recorded(world):
    client = page_client(world.users["auditor"])
    grant = Grant.objects.filter(team=world.teams["web"]).first()

    add = client.get("/admin/accounts/team/add/")
    change = client.post(
        f"/admin/accounts/grant/{grant.pk}/change/",
        {"team": grant.team_id, "service": "", "environment": grant.environment_id,
         "right": Right.RUN},
    )  # fmt: skip
    delete = client.post(f"/admin/accounts/grant/{grant.pk}/delete/", {"post": "yes"})

    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    grant.refresh_from_db()
    assert grant.service_id == world.hello.pk
    refusals = AuditEvent.objects.filter(outcome=Outcome.REFUSED, actor_name="audrey")
    assert refusals.count() == 3
    assert refusals.first().details["path"] == f"/admin/accounts/grant/{grant.pk}/delete/"


def test_deleting_a_token_or_a_user_is_recorded(world):
    from apps.accounts.services import token_create

    gone = UserFactory(username="leaver")
    world.teams["web"].memberships.create(user=gone)
    token, _ = token_create(user=gone, name="ci", acting_user=None, via="cli")
    old, _ = token_create(user=gone, name="old", acting_user=None, via="cli")
    client = page_client(world.users["ops"])

    dropped = client.post(f"/admin/accounts/apitoken/{old.pk}/delete/", {"post": "yes"})
    deleted = client.post(f"/admin/accounts/user/{gone.pk}/delete/", {"post": "yes"})

    assert dropped.status_code == 302 and deleted.status_code == 302
    assert AuditEvent.objects.get(verb="token.delete").details["name"] == "old"
    row = AuditEvent.objects.get(verb="user.delete")
    assert (row.object_repr, row.details["teams"], row.details["api_prefixes"]) == (
        "leaver",
        ["web"],
        [token.prefix],
    )


def test_a_duplicate_every_service_grant_inline_is_refused_with_a_message(world):
    team = world.teams["release"]
    Grant.objects.create(team=team, environment=world.envs["qa"], right=Right.VIEW)
    existing = [
        {"id": g.pk, "team": team.pk, "service": g.service_id or "",
         "environment": g.environment_id, "right": g.right}
        for g in team.grants.order_by("pk")
    ]  # fmt: skip
    duplicate = {"team": team.pk, "service": "", "environment": world.envs["qa"].pk,
                 "right": "view"}  # fmt: skip
    members = [{"id": m.pk, "team": team.pk, "user": m.user_id} for m in team.memberships.all()]

    response = page_client(world.users["ops"]).post(
        f"/admin/accounts/team/{team.pk}/change/",
        {"name": team.name, "slug": team.slug, "description": "", "sso_group": "",
         **_inline("memberships", members, initial=len(members)),
         **_inline("grants", [*existing, duplicate], initial=len(existing))},
    )  # fmt: skip

    assert response.status_code == 200
    assert "already" in response.content.decode()
    assert team.grants.filter(service=None, environment=world.envs["qa"]).count() == 1


def test_the_team_list_takes_as_many_queries_for_many_teams_as_for_few(world):
    client = page_client(world.users["ops"])
    client.get("/admin/accounts/team/")  # the session and permissions, read once
    with CaptureQueriesContext(connection) as few:
        client.get("/admin/accounts/team/")
    for n in range(5):
        TeamFactory(slug=f"extra-{n}", members=[world.users["member"]])

    with CaptureQueriesContext(connection) as many:
        response = client.get("/admin/accounts/team/")

    assert len(many) == len(few)
    assert '<td class="field-member_count">3</td>' in response.content.decode()


@pytest.mark.parametrize("role", ["ops", "auditor"])
def test_ops_and_auditors_never_read_authenticator_secrets(world, role):
    TOTP.activate(world.users["member"], generate_totp_secret())
    client = page_client(world.users[role])
    authenticator = Authenticator.objects.get()

    listing = client.get("/admin/mfa/authenticator/")
    detail = client.get(f"/admin/mfa/authenticator/{authenticator.pk}/change/")

    assert listing.status_code == 403 and detail.status_code == 403
    assert "mfa" not in client.get("/admin/").content.decode().lower()
    granted = role_permissions(world.users[role])
    assert granted and all(p.split(".")[0] in PORTAL_APPS for p in granted)


def test_reading_the_audit_log_brings_no_admin_permission(world):
    auditor = UserFactory(username="reader", role=Role.AUDITOR)  # not staff

    assert auditor.get_all_permissions() == {READ_LOG, SEE_WORKERS}
    assert not auditor.has_module_perms("audit")
    assert page_client(auditor).get("/admin/audit/auditevent/").status_code == 302
    assert READ_LOG in world.users["auditor"].get_all_permissions()
    assert READ_LOG not in world.users["member"].get_all_permissions()


def test_ops_cannot_make_a_token_of_a_superuser(world):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    client = page_client(world.users["ops"])

    response = client.post(
        "/admin/accounts/apitoken/add/",
        {"user": root.pk, "name": "mine now", "scopes": ["read", "run"],
         "expires_at_0": "", "expires_at_1": ""},
    )  # fmt: skip

    assert response.status_code == 200
    assert "You may not create tokens of a superuser." in response.content.decode()
    assert not ApiToken.objects.exists()
    assert not can_manage_tokens_of(world.users["ops"], owner=root)
    assert can_manage_tokens_of(root, owner=root)
