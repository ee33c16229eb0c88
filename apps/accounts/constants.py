from django.db import models


class Role(models.TextChoices):
    """What a person does in the portal; where they may run is decided by grants."""

    DEVELOPER = "developer", "Developer"
    OPS = "ops", "Ops"
    AUDITOR = "auditor", "Auditor"


class Right(models.TextChoices):
    """What a grant allows on a service in an environment. `run` includes `view`."""

    VIEW = "view", "View"
    RUN = "run", "Run"


class TokenScope(models.TextChoices):
    """What an API token may be used for: `read` for GET, `run` to launch and cancel,
    `alerts` for monitoring to send alerts (POST /api/v1/alerts/) and nothing else."""

    READ = "read", "Read"
    RUN = "run", "Run"
    ALERTS = "alerts", "Alerts"


# Both scopes: what a token created without saying otherwise (and every older token) has.
ALL_TOKEN_SCOPES = [TokenScope.READ.value, TokenScope.RUN.value]


# The permission ("app.codename") of the workers page and API, which the role backend
# gives to whom apps.accounts.permissions.can_see_workers allows (templates ask it).
SEE_WORKERS = "workers.see_workers"
