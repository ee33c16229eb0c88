from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction

from apps.audit.checkpoints import CheckpointError
from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.audit.verification import (
    ChainReport,
    archive_rows,
    audit_verify,
    chain_check,
    checkpoints_load,
)


class Command(BaseCommand):
    help = (
        "Check that the database still refuses changes to the audit log (its triggers) and "
        "walk the log's hash chain; exit 1 naming the first problem (a trigger missing or "
        "altered, a changed row, a removed row, rows cut from the end of the newest checkpoint)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoints",
            metavar="FILE",
            help="Published checkpoint file (default: AUDIT_CHECKPOINT_FILE when it exists).",
        )
        parser.add_argument(
            "--public-key",
            metavar="KEY",
            default="",
            help="Ed25519 public key (PEM file, PEM text or base64) the checkpoints are "
            "signed with (default: AUDIT_PUBLIC_KEY, or that of AUDIT_SIGNING_KEY).",
        )
        parser.add_argument(
            "--archive",
            metavar="FILE",
            help="Check an archive written by audit_archive instead of the database.",
        )

    def handle(self, *args, checkpoints=None, public_key="", archive=None, **options):
        path = Path(checkpoints) if checkpoints else None
        if path is None and settings.AUDIT_CHECKPOINT_FILE:
            default = Path(settings.AUDIT_CHECKPOINT_FILE)
            path = default if default.exists() else None
        if path is not None and not path.exists():
            raise CommandError(f"No checkpoint file {path}.")
        try:
            signed, notes = checkpoints_load(path, public_key=public_key)
        except CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        if archive:
            report = self._archive(Path(archive), signed, notes)
        else:
            report = audit_verify(checkpoints=signed, notes=notes)
            self._record(report)
        self._print(report)
        if not report.ok:
            raise CommandError(f"The audit log does not verify: {report.problems[0]}", returncode=1)

    def _record(self, report: ChainReport) -> None:
        """The walk itself is a row of the log, when the log can still take one."""
        try:
            # A savepoint of its own: a log that cannot take the row spoils nothing after.
            with transaction.atomic():
                audit_record(
                    actor=None,
                    via=Via.CLI,
                    verb="audit.verify",
                    outcome="success" if report.ok else "failure",
                    details={
                        "rows": report.rows_checked,
                        "last_sequence": report.last_sequence,
                        "problem": str(report.problems[0]) if report.problems else "",
                        "checkpoints": report.checkpoints_checked,
                    },
                )
        except DatabaseError as exc:
            report.notes.append(f"This verification could not be recorded in the log: {exc}")

    def _archive(self, path: Path, signed: list[dict], notes: list[str]) -> ChainReport:
        if not path.exists():
            raise CommandError(f"No archive {path}.")
        rows = archive_rows(path)
        first = next(rows, None)
        report = ChainReport(notes=notes)
        if first is None:
            return report
        # An archive may start anywhere: it is checked from its own first row on.
        chain = chain_check(
            _chain(first, rows),
            checkpoints=[c for c in signed if c["sequence"] >= first[0]],
            start_sequence=first[0],
            start_prev_hash=first[15],
            report=report,
            complete=False,
        )
        chain.checkpoints_checked = len(signed)
        return chain

    def _print(self, report: ChainReport) -> None:
        write = self.stdout.write
        rate = f"{report.rate:,.0f} rows/s" if report.duration else "-"
        write(
            f"Checked {report.rows_checked:,} rows (#{report.first_sequence:,} to "
            f"#{report.last_sequence:,}) in {report.duration:.2f} s: {rate}."
        )
        if report.checkpoints_checked:
            newest = report.newest_checkpoint or {}
            write(
                f"Checked {report.checkpoints_checked} signed checkpoint(s); the newest covers "
                f"#{newest.get('sequence', '?')} (signed {newest.get('time', '?')})."
            )
        for note in report.notes:
            write(self.style.WARNING(note))
        if report.ok:
            write(
                self.style.SUCCESS(
                    f"The chain is intact up to #{report.last_sequence:,} "
                    f"(hash {report.last_hash})."
                )
            )
            return
        for problem in report.problems:
            write(self.style.ERROR(str(problem)))
        if report.problem_count > len(report.problems):
            write(f"... and {report.problem_count - len(report.problems)} more problem(s).")


def _chain(first, rest):
    yield first
    yield from rest
