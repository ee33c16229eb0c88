"""`manage.py serve` (what `make run` starts): the web process, a Celery worker for the
runs, one for the housekeeping (the reaper, schedules, follow-ups, notifications: never
waiting behind playbooks) and Celery beat, each a process of its own, kept going.

A process that dies is started again after a pause that doubles with each death in a
row (1, 2, 4 … 30 s) and starts over once it stayed up a minute; the others go on, so a
killed worker takes neither the portal nor the reaper with it. The worker keeps its
name across restarts, so the new one ends the runs the dead one had as lost at once.
Ctrl-C (or SIGTERM) stops them all.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.environments.management.commands.load_demo import USERS

RESTART_DELAYS = (1, 2, 4, 8, 16, 30)
# A process up this long is well: its next death waits the first delay again.
STEADY_SECONDS = 60
# A process that exits on its own this soon after serve started (the port is taken,
# the database cannot be reached) would only fail again: serve stops, saying why.
STARTUP_SECONDS = 15
POLL_SECONDS = 0.2
STOP_TIMEOUT = 30


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    deaths: int = 0  # in a row
    restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self.started_at = time.monotonic()
        self.restart_at = None


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"signal {-returncode}"
    return f"code {returncode}"


class Command(BaseCommand):
    help = (
        "Start the portal: the web process, a Celery worker for the runs, one for the "
        "housekeeping and Celery beat (the periodic tasks, among them the reaper of lost "
        "runs); a process that dies is restarted; Ctrl-C stops them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.getenv("BIND", "127.0.0.1:8000"))
        parser.add_argument(
            "--queues", default=os.getenv("WORKER_QUEUES", settings.CELERY_TASK_DEFAULT_QUEUE)
        )

    def handle(self, *args, bind, queues, **options):
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], check=True
        )
        children = _children(bind=bind, queues=queues)
        for child in children:
            child.start()
        self.say(f"\nPushbutton is running on http://{bind}/")
        self.say("Demo logins: " + ", ".join(f"{u} / {p}" for u, _, p, _ in USERS))
        self.say("Press Ctrl-C to stop the web process, the workers and beat.\n")
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        failed = None
        try:
            failed = self.supervise(children, started=time.monotonic())
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C (or SIGTERM) must not leave the children behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _stop(children)
        if failed:
            raise CommandError(failed, returncode=1)

    def supervise(self, children: list[Child], *, started: float) -> str:
        """Restart what dies, until Ctrl-C; returns why serve must stop instead."""
        while True:
            now = time.monotonic()
            for child in children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.start()
                        self.say(f"{child.name} restarted (pid {child.process.pid})")
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                ended = how_it_ended(code)
                if code > 0 and now - started < STARTUP_SECONDS:
                    return f"The {child.name} exited with {ended} while starting: stopping."
                if now - child.started_at >= STEADY_SECONDS:
                    child.deaths = 0
                delay = RESTART_DELAYS[min(child.deaths, len(RESTART_DELAYS) - 1)]
                child.deaths += 1
                child.restart_at = now + delay
                self.say(f"{child.name} exited with {ended}; restarting in {delay} s")
            time.sleep(POLL_SECONDS)

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()  # between the children's lines, in order, even into a pipe


def _children(*, bind: str, queues: str) -> list[Child]:
    bindir = os.path.dirname(sys.executable)
    celery = [os.path.join(bindir, "celery"), "-A", "portal"]
    worker = [
        *celery, "worker", "--loglevel", "INFO",
        "-Q", queues, "--concurrency", os.getenv("WORKER_CONCURRENCY", "2"),
        # The same name after a restart: the new worker ends the old one's runs as lost.
        "-n", "pushbutton@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    # Beat on its own: the periodic tasks, the reaper among them, outlive a dead worker.
    beat = [*celery, "beat", "--loglevel", "INFO"]
    web = [
        os.path.join(bindir, "gunicorn"), "portal.wsgi", "--bind", bind,
        "--workers", "1", "--threads", "8", "--access-logfile", "-", "--graceful-timeout", "5",
    ]  # fmt: skip
    children = [Child("web", web), Child("worker", worker), Child("beat", beat)]
    housekeeping = settings.CELERY_HOUSEKEEPING_QUEUE
    if housekeeping not in queues.split(","):
        children.insert(2, Child("housekeeping worker", [
            *celery, "worker", "--loglevel", "INFO", "-Q", housekeeping, "--concurrency", "1",
            "-n", "pushbutton-housekeeping@%h", "--without-gossip", "--without-mingle",
        ]))  # fmt: skip
    return children


def _stop(children: list[Child]) -> None:
    running = [c.process for c in children if c.process and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
