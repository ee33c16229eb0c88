"""The two moments of a run's life other apps may hook into, and the only ones.

`run_started` is sent once a run is running; `run_ended` once it reached its final status,
whichever way (finished, failed, canceled while queued or running, timed out, lost, never
started). Each is sent from one function of apps/runs/services/lifecycle.py, after the
transaction that wrote the status and its audit row committed, with `run` (the Run,
as stored) as its only argument.

Subscribe explicitly, in your app's AppConfig.ready():

    from apps.runs.signals import run_ended
    run_ended.connect(my_receiver, dispatch_uid="myapp.my_receiver")

A receiver that raises is logged and does not stop the others (send_robust): a failed
notification must never keep a queue from moving on.
"""

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

run_started = Signal()
run_ended = Signal()


def emit(signal: Signal, *, run) -> None:
    """Send `signal` for `run` to every receiver; log what failed."""
    for receiver, result in signal.send_robust(sender=type(run), run=run):
        if isinstance(result, Exception):
            log.error(
                "%s of run %s failed in %r",
                "run_started" if signal is run_started else "run_ended",
                run.pk,
                receiver,
                exc_info=result,
            )
