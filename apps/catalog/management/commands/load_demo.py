import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import Role, User
from apps.audit.models import Via
from apps.catalog.constants import ActionKind
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service
from apps.catalog.services import playbook_version_approve, source_sync
from apps.environments.models import Environment

DEMO_DIR = Path(settings.BASE_DIR) / "demo" / "playbooks"
USERS = [
    # username, role, password, staff
    ("ops", Role.OPS, "pushbutton-ops", True),
    ("dev", Role.DEVELOPER, "pushbutton-dev", False),
    ("auditor", Role.AUDITOR, "pushbutton-auditor", False),
]
ENVIRONMENTS = [("Test", "test", 10), ("QA", "qa", 20), ("Production", "production", 30)]
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
    help = "Load the demo: playbook repository, hello-web, environments and users (idempotent)."

    def handle(self, *args, **options):
        repo = settings.VAR_DIR / "demo-playbooks"
        self._update_repo(repo)
        with transaction.atomic():
            users = {
                name: self._user(name, role, password, staff)
                for name, role, password, staff in USERS
            }
            environments = [self._environment(*env) for env in ENVIRONMENTS]
            source, _ = PlaybookSource.objects.get_or_create(
                name="demo", defaults={"url": str(repo), "branch": "main"}
            )
        commits = source_sync(source=source, acting_user=None, via=Via.CLI)
        head = commits[0].sha
        service, _ = Service.objects.get_or_create(
            slug="hello-web",
            defaults={
                "name": "hello-web",
                "description": "A small web page, deployed by the demo playbooks.",
            },
        )
        for position, (slug, label, kind, playbook, form, version_field, description) in enumerate(
            ACTIONS
        ):
            version = PlaybookVersion.objects.get(source=source, commit=head, path=playbook)
            if not version.is_approved:
                playbook_version_approve(version=version, acting_user=users["ops"], via=Via.CLI)
            action, _ = Action.objects.update_or_create(
                service=service,
                slug=slug,
                defaults={
                    "label": label,
                    "kind": kind,
                    "playbook_version": version,
                    "form": form,
                    "version_field": version_field,
                    "description": description,
                    "timeout": 600,
                    "position": position,
                },
            )
            action.full_clean()
            action.environments.set(environments)
        self.stdout.write(self.style.SUCCESS(f"Demo loaded: hello-web, playbooks at {head[:10]}."))

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
                "is_superuser": staff,
                "email": f"{username}@example.com",
            },
        )
        if created:
            user.set_password(password)
            user.save()
        return user

    def _environment(self, name, slug, order) -> Environment:
        target = settings.VAR_DIR / "targets" / slug
        target.mkdir(parents=True, exist_ok=True)
        inventory = {
            "web": {
                "hosts": {"localhost": {"ansible_connection": "local"}},
                "vars": {"target_root": str(target)},
            }
        }
        env, _ = Environment.objects.update_or_create(
            slug=slug, defaults={"name": name, "order": order, "inventory": inventory}
        )
        return env
