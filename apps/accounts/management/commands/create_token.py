from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print its key (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, username, name, **options):
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        _, key = token_create(user=user, name=name, acting_user=None, via="cli")
        self.stdout.write(key)
