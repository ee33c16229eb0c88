"""The worker process's side: a heartbeat row written when the worker is ready, then
every WORKER_HEARTBEAT_SECONDS from a daemon thread, and marked stopped when it shuts
down cleanly (see services.py for why rows and not Celery's events)."""

import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.workers.services import WorkerFacts, worker_heartbeat, worker_stopped

log = logging.getLogger(__name__)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def _queues(consumer) -> list[str]:
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is not None and task_consumer.queues:
        return [queue.name for queue in task_consumer.queues]
    return list(consumer.app.amqp.queues.consume_from or {})


def _concurrency(consumer) -> int:
    controller = getattr(consumer, "controller", None)
    return int(getattr(controller, "concurrency", 0) or 0)


@dataclass
class Heartbeat:
    """The heartbeat of one worker process (there is one per process, see connect)."""

    consumer: object
    started_at: object = field(default_factory=timezone.now)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def facts(self) -> WorkerFacts:
        return WorkerFacts(
            hostname=self.consumer.hostname,
            queues=_queues(self.consumer),
            concurrency=_concurrency(self.consumer),
            pid=os.getpid(),
            pushbutton_version=_version("pushbutton"),
            ansible_core_version=_version("ansible-core"),
            started_at=self.started_at,
        )

    def beat(self) -> None:
        try:
            worker_heartbeat(facts=self.facts())
        except Exception:
            # The database may be away for a moment: the worker goes on, and shows as
            # silent until a heartbeat gets through.
            log.exception("The worker's heartbeat could not be written")
            connection.close()

    def start(self) -> None:
        self.beat()
        self.thread = threading.Thread(target=self._loop, name="pushbutton-heartbeat", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while not self.stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
                self.beat()
        finally:
            connection.close()

    def end(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        try:
            worker_stopped(hostname=self.consumer.hostname)
        except Exception:
            log.exception("The worker's stop could not be recorded")


_current: Heartbeat | None = None


def _on_ready(sender, **kwargs) -> None:
    global _current
    if _current is not None or not getattr(sender, "hostname", None):
        return
    _current = Heartbeat(consumer=sender)
    _current.start()
    log.info("Heartbeat of %s every %s s.", sender.hostname, settings.WORKER_HEARTBEAT_SECONDS)


def _on_shutdown(sender=None, **kwargs) -> None:
    global _current
    if _current is not None:
        _current.end()
        _current = None


def connect() -> None:
    worker_ready.connect(_on_ready, dispatch_uid="workers.heartbeat.ready", weak=False)
    worker_shutdown.connect(_on_shutdown, dispatch_uid="workers.heartbeat.shutdown", weak=False)
