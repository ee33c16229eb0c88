"""Works every change row of the insights out again from the runs.

The rows follow the runs by themselves; this is for runs written around the portal's
services (an import of history) and to check the rows against the runs."""

import time

from django.core.management.base import BaseCommand

from apps.insights.changes import rebuild_all


class Command(BaseCommand):
    help = "Work the insights' change rows out again from the run history."

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        count = rebuild_all()
        self.stdout.write(f"{count} changes worked out in {time.monotonic() - started:.1f} s.")
