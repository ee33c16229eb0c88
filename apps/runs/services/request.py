"""What a launch is asked with: one request, whoever asks."""

from dataclasses import dataclass
from typing import Any

from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action, Service
from apps.environments.models import Environment
from apps.runs.models import Run


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a launch is asked with, whoever asks: a page, the API, or the system
    following up a run (`triggered_by`, on behalf of `user`).

    `parameters` is what was given for the action's form: a JSON object with typed values
    (`given_as=ParameterInput.JSON`) or the text fields of a posted form
    (`ParameterInput.FORM`). `http_request` is the request it came with, if any: its
    address goes into the audit row and its session holds the second factor.

    `when_locked` says what to do when another run holds the deploy lock: refuse (409)
    or wait in the deploy queue (apps/runs/services/waiting.py); by default, what the
    environment says.

    `source` is the build it deploys (apps/runs/provenance.py), as the API validated it;
    without one, a promotion, a rollback or a run again carries that of the run it
    repeats. `idempotency_key`, with the `fingerprint` of the request it came with
    (idempotency.launch_fingerprint), makes asking again answer with the first run."""

    user: Any
    service: Service
    action: Action
    environment: Environment
    parameters: Any = None
    given_as: str = ParameterInput.JSON
    via: str = Via.API
    http_request: Any = None
    check: bool = False
    auto_verify: bool = False
    rerun_of: Run | None = None
    rollback_of: Run | None = None
    promoted_from: Environment | None = None
    reason: str = ""
    emergency_reason: str = ""
    triggered_by: Run | None = None
    source: dict | None = None
    idempotency_key: str = ""
    fingerprint: dict | None = None
    when_locked: str = ""  # WhenLocked; "" = as the environment says
