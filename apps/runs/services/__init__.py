"""What changes runs. Each module says what it holds:

- launch:     LaunchRequest, run_plan (every check, refusals audited), run_launch
- idempotency: the Idempotency-Key of a launch: asked again, the same run answers
- checks:     the checks themselves, LaunchRefused, LaunchPlan
- lifecycle:  run_start (the one door in), run_end (the one door out), run_cancel,
              heartbeat, enqueue; what follows a run hangs on apps.runs.signals
- follow_ups: what the system launches by itself after a run succeeded
- reaping:    runs whose worker is gone, that no worker took, or whose queue has none
- keys:       re-encrypting the secrets of runs going on
- visibility: a run looked up for someone (hidden reads as missing)
- waiting:    the deploy queue: runs waiting for the deploy lock, started in turn
- request:    LaunchRequest, what a launch is asked with

The names below are the ones the rest of the portal uses.
"""

from apps.runs.services.checks import LaunchPlan, LaunchRefused
from apps.runs.services.follow_ups import run_follow_up, runs_follow_ups_missed
from apps.runs.services.idempotency import launch_fingerprint, launch_key_replay
from apps.runs.services.keys import runs_rotate_key
from apps.runs.services.launch import (
    LaunchRequest,
    run_launch,
    run_plan,
    run_refusal_record,
    run_snapshot,
)
from apps.runs.services.lifecycle import (
    EndNote,
    run_cancel,
    run_credentials,
    run_end,
    run_enqueue,
    run_heartbeat,
    run_queued_max_seconds,
    run_secret_values,
    run_should_stop,
    run_start,
)
from apps.runs.services.reaping import (
    run_on_host,
    run_on_this_host,
    runs_fail_no_worker,
    runs_fail_unstarted,
    runs_mark_lost,
    worker_host,
)
from apps.runs.services.visibility import run_for
from apps.runs.services.waiting import WaitState, queue_advance, queues_advance, run_wait_state

__all__ = [
    "EndNote",
    "LaunchPlan",
    "LaunchRefused",
    "LaunchRequest",
    "WaitState",
    "launch_fingerprint",
    "launch_key_replay",
    "queue_advance",
    "queues_advance",
    "run_cancel",
    "run_credentials",
    "run_end",
    "run_enqueue",
    "run_follow_up",
    "run_for",
    "run_heartbeat",
    "run_launch",
    "run_on_host",
    "run_on_this_host",
    "run_plan",
    "run_queued_max_seconds",
    "run_refusal_record",
    "run_secret_values",
    "run_should_stop",
    "run_snapshot",
    "run_start",
    "run_wait_state",
    "runs_fail_no_worker",
    "runs_fail_unstarted",
    "runs_follow_ups_missed",
    "runs_mark_lost",
    "runs_rotate_key",
    "worker_host",
]
