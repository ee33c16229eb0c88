"""The progress of a run, kept on it as its events are stored (apps/runs/progress.py).

Runs stored before have none (null): it is counted from their events once, the first
time a page asks for it. New runs start with an empty one."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_deploy_queue")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="progress",
            field=models.JSONField(blank=True, null=True, default=None),
        ),
        migrations.AlterField(
            model_name="run",
            name="progress",
            field=models.JSONField(blank=True, null=True, default=dict),
        ),
    ]
