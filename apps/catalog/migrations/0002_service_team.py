import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_teams_grants_token_limits"),
        ("catalog", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="service",
            name="team",
            field=models.ForeignKey(
                blank=True,
                help_text="The team that owns the service: its members see it on every environment.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="services",
                to="accounts.team",
            ),
        ),
    ]
