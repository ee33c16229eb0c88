from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.audit.exports import archive_write
from apps.audit.forms import MomentField
from apps.audit.selectors import audit_export_rows, audit_head_sequence


class Command(BaseCommand):
    help = (
        "Export audit rows, oldest first, with their hashes, to a JSON Lines file (gzip "
        "when it ends in .gz) for long-term storage. Rows stay in the database: nothing "
        "in Pushbutton deletes them."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", help="File to write, e.g. audit-2025.jsonl.gz")
        parser.add_argument("--since", help="Rows from this date or time on (default: the first).")
        parser.add_argument(
            "--until", help="Rows before this date (the whole day included) or time."
        )
        parser.add_argument("--force", action="store_true", help="Overwrite the output file.")

    def handle(self, *args, output, since=None, until=None, force=False, **options):
        path = Path(output)
        if path.exists() and not force:
            raise CommandError(f"{path} exists; give --force to overwrite it.")
        filters = {}
        for name, value, end in (("since", since, False), ("until", until, True)):
            if value:
                try:
                    filters[name] = MomentField(end_of_day=end).clean(value)
                except ValidationError as exc:
                    raise CommandError(f"--{name}: {' '.join(exc.messages)}") from exc
        rows = audit_export_rows(filters=filters, up_to=audit_head_sequence(), oldest_first=True)
        manifest = archive_write(path, rows)
        if not manifest["rows"]:
            self.stdout.write(self.style.WARNING("No rows in that range; the archive is empty."))
            return
        self.stdout.write(
            f"Archived {manifest['rows']:,} rows (#{manifest['first_sequence']} to "
            f"#{manifest['last_sequence']}) to {path}, sha256 {manifest['sha256']}. "
            f"Check it with `manage.py verify_audit --archive {path}`."
        )
