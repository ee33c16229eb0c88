import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.accounts.constants import ALL_TOKEN_SCOPES
from apps.accounts.models import User
from apps.accounts.selectors import environments_by_slug
from apps.accounts.services import token_create
from apps.audit.constants import Via


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print its key (shown only once). "
        "By default it may read and run wherever its user may, and never expires."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scopes",
            default=",".join(ALL_TOKEN_SCOPES),
            help="Comma-separated: read, run (default: read,run).",
        )
        parser.add_argument(
            "--environment",
            action="append",
            default=[],
            dest="environments",
            metavar="SLUG",
            help="Limit the token to this environment (repeat for more). Needed to run "
            "where two-factor authentication is required.",
        )
        parser.add_argument(
            "--expires-in", type=int, metavar="DAYS", help="Days until the token expires."
        )

    def handle(self, *args, username, name, scopes, environments, expires_in, **options):
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        found, missing = environments_by_slug(slugs=environments)
        if missing:
            raise CommandError(f"No environment {', '.join(map(repr, missing))}.")
        if expires_in is not None and expires_in < 1:
            raise CommandError("--expires-in takes a number of days, 1 or more.")
        expires_at = timezone.now() + datetime.timedelta(days=expires_in) if expires_in else None
        try:
            _, key = token_create(
                user=user,
                name=name,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                environments=found,
                expires_at=expires_at,
                acting_user=None,
                via=Via.CLI,
            )
        except ValidationError as exc:
            raise CommandError(
                " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from exc
        self.stdout.write(key)
