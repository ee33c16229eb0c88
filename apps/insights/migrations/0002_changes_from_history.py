"""The change rows of the history there is (the rows follow new runs by themselves).

Uses apps/insights/changes.py as it is now: the rows are worked out from the runs by the
same code that keeps them up to date. A database with no run does nothing here."""

from django.db import migrations


def from_history(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    if not Run.objects.exists():
        return
    from apps.insights.changes import rebuild_all

    rebuild_all()


class Migration(migrations.Migration):
    dependencies = [("insights", "0001_changes")]

    operations = [migrations.RunPython(from_history, migrations.RunPython.noop)]
