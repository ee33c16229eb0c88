import datetime
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import Grant, Membership, Right, Role, Team, User
from apps.accounts.services import grant_save, membership_save, team_save
from apps.audit.constants import Via
from apps.audit.services import audit_changes, audit_noun, audit_record, audit_snapshot
from apps.catalog.constants import ActionKind
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service
from apps.catalog.services import playbook_version_approve, source_sync
from apps.environments.constants import FreezeKind
from apps.environments.models import Environment, FreezeWindow

DEMO_DIR = Path(settings.BASE_DIR) / "demo" / "playbooks"
USERS = [
    # username, role, password, staff (the admin; ops is also a superuser)
    ("ops", Role.OPS, "pushbutton-ops", True),
    ("dev", Role.DEVELOPER, "pushbutton-dev", False),
    ("tester", Role.DEVELOPER, "pushbutton-tester", False),
    ("auditor", Role.AUDITOR, "pushbutton-auditor", True),
]
TEAMS = [
    # slug, name, members, owns hello-web, grants: (service, or None for every one;
    # environment; right). dev deploys everywhere; tester shows that grants matter:
    # test and QA, and production only to look at.
    ("web", "Web", ["dev"], True,
     [(None, "test", Right.RUN), (None, "qa", Right.RUN), (None, "production", Right.RUN)]),
    ("qa", "QA", ["tester"], False,
     [("hello-web", "test", Right.RUN), ("hello-web", "qa", Right.RUN),
      ("hello-web", "production", Right.VIEW)]),
]  # fmt: skip
ENVIRONMENTS = [
    # name, slug, order, rules: QA and production take only versions verified before them
    # (the smoke test); production asks for a confirmation of each run.
    ("Test", "test", 10, {"require_verified": False, "confirm_runs": False}),
    ("QA", "qa", 20, {"require_verified": True, "confirm_runs": False}),
    ("Production", "production", 30, {"require_verified": True, "confirm_runs": True}),
]
VERSION_FIELD = {
    "name": "version",
    "label": "Version",
    "type": "string",
    "required": True,
    "pattern": r"^\d+\.\d+\.\d+$",
    "help": "Release number, e.g. 1.0.0",
}
ACTIONS = [
    # slug, label, kind, playbook, form, version field, description
    ("deploy", "Deploy", ActionKind.DEPLOY, "deploy.yml", [VERSION_FIELD], "version",
     "Install a release and switch to it atomically."),
    ("rollback", "Rollback", ActionKind.ROLLBACK, "rollback.yml", [], "",
     "Switch back to the release that ran before."),
    ("smoke-test", "Smoke test", ActionKind.VERIFY, "smoke.yml", [], "",
     "Check the current release serves its own version."),
]  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.name=Pushbutton demo", "-c", "user.email=demo@pushbutton.invalid"]
    return subprocess.run(
        ["git", "-C", str(repo), *env_args, *args], check=True, capture_output=True, text=True
    ).stdout


class Command(BaseCommand):
    help = (
        "Load the demo: playbook repository, hello-web, environments, users, teams and "
        "grants (idempotent)."
    )

    def handle(self, *args, **options):
        repo = settings.VAR_DIR / "demo-playbooks"
        self._update_repo(repo)
        with transaction.atomic():
            users = {
                name: self._user(name, role, password, staff)
                for name, role, password, staff in USERS
            }
            environments = [self._environment(*env) for env in ENVIRONMENTS]
            source = self._save(
                PlaybookSource, {"name": "demo"}, {"url": str(repo), "branch": "main"}, update=False
            )
        commits = source_sync(source=source, acting_user=None, via=Via.CLI)
        head = commits[0].sha
        service = self._save(
            Service,
            {"slug": "hello-web"},
            {
                "name": "hello-web",
                "description": "A small web page, deployed by the demo playbooks.",
            },
            update=False,
        )
        self._teams(service, users, {env.slug: env for env in environments})
        for position, (slug, label, kind, playbook, form, version_field, description) in enumerate(
            ACTIONS
        ):
            version = PlaybookVersion.objects.get(source=source, commit=head, path=playbook)
            if not version.is_approved:
                playbook_version_approve(version=version, acting_user=users["ops"], via=Via.CLI)
            self._save(
                Action,
                {"service": service, "slug": slug},
                {
                    "label": label,
                    "kind": kind,
                    "playbook_version": version,
                    "form": form,
                    "version_field": version_field,
                    "description": description,
                    "timeout": 600,
                    "position": position,
                },
                environments=environments,
            )
        self._production_rules({env.slug: env for env in environments})
        self.stdout.write(self.style.SUCCESS(f"Demo loaded: hello-web, playbooks at {head[:10]}."))

    def _production_rules(self, environments) -> None:
        """Team Web is on call for production (it may override a freeze, with a reason), and
        a weekend freeze is defined there but left inactive: Ops tick it in the admin."""
        production = environments["production"]
        web = Team.objects.get(slug="web")
        with transaction.atomic():
            if not production.emergency_teams.filter(pk=web.pk).exists():
                production.emergency_teams.add(web)
                audit_record(
                    actor=None,
                    via=Via.CLI,
                    verb="environment.update",
                    obj=production,
                    environment=production.slug,
                    details={"emergency_teams": {"added": [web.slug]}},
                )
        self._save(
            FreezeWindow,
            {"environment": production, "name": "Weekend freeze"},
            {
                "reason": "Nobody is on call at weekends.",
                "kind": FreezeKind.WEEKLY,
                "weekdays": [5, 6],
                "start_time": datetime.time(0, 0),
                "end_time": datetime.time(0, 0),
                "time_zone": settings.TIME_ZONE,
                "active": False,
            },
            update=False,
        )

    def _update_repo(self, repo: Path) -> None:
        if not (repo / ".git").exists():
            repo.mkdir(parents=True, exist_ok=True)
            _git(repo, "init", "--quiet", "--initial-branch=main")
        for path in DEMO_DIR.glob("*.yml"):
            shutil.copy2(path, repo / path.name)
        _git(repo, "add", "--all")
        if _git(repo, "status", "--porcelain").strip():
            _git(repo, "commit", "--quiet", "-m", "Demo playbooks for hello-web")

    def _user(self, username, role, password, staff) -> User:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "role": role,
                "is_staff": staff,
                "is_superuser": staff and role == Role.OPS,
                "email": f"{username}@example.com",
            },
        )
        if created:
            user.set_password(password)
            user.save()
        return user

    def _teams(self, service, users, environments) -> None:
        """The teams and their grants, made once: what Ops change later is left alone."""
        for slug, name, members, owns, grants in TEAMS:
            if Team.objects.filter(slug=slug).exists():
                continue
            with transaction.atomic():
                team = team_save(team=Team(slug=slug, name=name), acting_user=None, via=Via.CLI)
                for username in members:
                    membership_save(
                        membership=Membership(team=team, user=users[username]),
                        acting_user=None,
                        via=Via.CLI,
                    )
                for service_slug, env_slug, right in grants:
                    grant_save(
                        grant=Grant(
                            team=team, service=service if service_slug else None,
                            environment=environments[env_slug], right=right,
                        ),
                        acting_user=None,
                        via=Via.CLI,
                    )  # fmt: skip
                if owns and service.team_id is None:
                    service.team = team
                    service.save(update_fields=["team"])

    def _environment(self, name, slug, order, rules) -> Environment:
        target = settings.VAR_DIR / "targets" / slug
        target.mkdir(parents=True, exist_ok=True)
        inventory = {
            "web": {
                "hosts": {"localhost": {"ansible_connection": "local"}},
                "vars": {"target_root": str(target)},
            }
        }
        return self._save(
            Environment,
            {"slug": slug},
            {"name": name, "order": order, "inventory": inventory, **rules},
        )

    def _save(self, model, lookup: dict, values: dict, *, update=True, environments=None):
        """Create or update one demo row, recording the change (with its diff) in the audit log."""
        with transaction.atomic():
            obj = model.objects.select_for_update().filter(**lookup).first()
            before = audit_snapshot(obj) if obj else None
            if obj is None:
                obj = model(**lookup, **values)
            elif update:
                for name, value in values.items():
                    setattr(obj, name, value)
            obj.full_clean(exclude=["environments"] if environments is not None else None)
            obj.save()
            if environments is not None:
                obj.environments.set(environments)
            changes = audit_changes(before, audit_snapshot(obj))
            if changes:
                audit_record(
                    actor=None,
                    via=Via.CLI,
                    verb=f"{audit_noun(obj)}.{'update' if before else 'create'}",
                    obj=obj,
                    details={"changes": changes},
                )
        return obj
