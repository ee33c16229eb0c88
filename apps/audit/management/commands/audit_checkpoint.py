import base64

from django.core.management.base import BaseCommand, CommandError

from apps.audit.checkpoints import (
    CheckpointError,
    audit_checkpoint_create,
    key_generate,
    key_id,
    public_pem,
    public_raw,
    verifying_key,
)


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit log (sequence number, head hash, time) with "
        "AUDIT_SIGNING_KEY and publish it to AUDIT_CHECKPOINT_FILE and/or "
        "AUDIT_CHECKPOINT_WEBHOOK."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="Print a new key for AUDIT_SIGNING_KEY and its public key; sign nothing.",
        )
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="Print the public key of AUDIT_SIGNING_KEY (to give to whoever verifies).",
        )

    def handle(self, *args, generate_key=False, public_key=False, **options):
        if generate_key:
            private, public = key_generate()
            self.stdout.write(f"AUDIT_SIGNING_KEY={private}")
            self.stdout.write("# Keep it secret. The public key, to verify checkpoints:")
            self.stdout.write(public_pem(public).strip())
            return
        try:
            if public_key:
                key = verifying_key()
                if key is None:
                    raise CheckpointError("Set AUDIT_SIGNING_KEY or AUDIT_PUBLIC_KEY.")
                self.stdout.write(public_pem(key).strip())
                # On stderr, so `--public-key > audit-public.pem` writes the PEM alone.
                self.stderr.write(f"key id {key_id(key)}, raw base64 {_b64(public_raw(key))}")
                return
            checkpoint = audit_checkpoint_create()
        except CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Checkpoint #{checkpoint.sequence} {checkpoint.hash} signed at "
            f"{checkpoint.signed_at:%Y-%m-%d %H:%M:%S} by key {checkpoint.key_id}."
        )
        for target in checkpoint.published_to:
            self.stdout.write(f"Published to {target}.")
        if not checkpoint.published_to and not checkpoint.publish_errors:
            self.stdout.write(
                self.style.WARNING(
                    "Published nowhere: set AUDIT_CHECKPOINT_FILE or AUDIT_CHECKPOINT_WEBHOOK."
                )
            )
        if checkpoint.publish_errors:
            raise CommandError("Not published: " + "; ".join(checkpoint.publish_errors))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
