"""The secrets runs carry while they have not ended, under a new encryption key."""

from django.db import transaction

from apps.runs.models import Run
from portal.crypto import DecryptionError, token_is_current, token_rotate


def runs_rotate_key() -> int:
    """Re-encrypt the secrets of runs not yet ended with the current key."""
    rotated = 0
    with transaction.atomic():
        for run in Run.objects.select_for_update().exclude(
            secret_parameters="", secret_credentials=""
        ):
            fields = [
                f
                for f in ("secret_parameters", "secret_credentials")
                if getattr(run, f) and not token_is_current(getattr(run, f))
            ]
            for field in fields:
                try:
                    setattr(run, field, token_rotate(getattr(run, field)))
                except DecryptionError as exc:
                    raise DecryptionError(f"Run #{run.pk}: {exc}") from exc
            if fields:
                run.save(update_fields=fields)
                rotated += 1
    return rotated
