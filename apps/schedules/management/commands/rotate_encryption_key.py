# In the top app (schedules) because it re-encrypts the secrets of every app below it.
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.environments.services import credentials_rotate_key
from apps.runs.services import runs_rotate_key
from apps.schedules.services import schedules_rotate_key
from portal.crypto import DecryptionError, key_generate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (credentials, the secrets of runs not yet ended, and "
        "the secret parameters of schedules) "
        "with the first key of FIELD_ENCRYPTION_KEY. Rotation: put the new key first, keep "
        "the old one after it, run this, then remove the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--generate", action="store_true", help="Only print a new key, and change nothing."
        )

    def handle(self, *args, generate=False, **options):
        if generate:
            self.stdout.write(key_generate())
            return
        try:
            with transaction.atomic():  # all or nothing
                credentials = credentials_rotate_key()
                runs = runs_rotate_key()
                schedules = schedules_rotate_key()
        except DecryptionError as exc:
            raise CommandError(
                f"{exc} Add the key it was encrypted with to FIELD_ENCRYPTION_KEY "
                "(after the new one) and run this again."
            ) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {credentials} credential(s) and the secrets of {runs} run(s) "
                f"and {schedules} schedule(s) with the current key."
            )
        )
