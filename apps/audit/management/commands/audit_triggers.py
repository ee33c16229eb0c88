from django.core.management.base import BaseCommand, CommandError

from apps.audit.triggers import (
    TriggerError,
    event_trigger_notes,
    triggers_install,
    triggers_problems,
)


class Command(BaseCommand):
    help = (
        "Check the triggers that make the database refuse changes to the audit log; exit 1 "
        "naming what is missing or altered. --install creates it again (on PostgreSQL, run "
        "as a superuser, the event triggers too)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--install",
            action="store_true",
            help="Create what is missing or altered; leave the rest as it is.",
        )

    def handle(self, *args, install=False, **options):
        if install:
            try:
                done = triggers_install()
            except TriggerError as exc:
                raise CommandError(str(exc)) from exc
            for line in done:
                self.stdout.write(line)
        for note in event_trigger_notes():
            self.stdout.write(self.style.WARNING(note))
        problems = triggers_problems()
        if problems:
            raise CommandError(
                "The audit log's protection is broken: " + "; ".join(map(str, problems)) + ".",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("The audit log's triggers are all in place."))
