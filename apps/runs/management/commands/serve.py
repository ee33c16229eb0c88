import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.environments.management.commands.load_demo import USERS


class Command(BaseCommand):
    help = (
        "Start the portal: one web process and one Celery worker (with beat, the periodic "
        "tasks); Ctrl-C stops both."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.getenv("BIND", "127.0.0.1:8000"))
        parser.add_argument(
            "--queues", default=os.getenv("WORKER_QUEUES", settings.CELERY_TASK_DEFAULT_QUEUE)
        )

    def handle(self, *args, bind, queues, **options):
        bindir = os.path.dirname(sys.executable)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], check=True
        )
        worker = [
            os.path.join(bindir, "celery"), "-A", "portal", "worker", "--loglevel", "INFO",
            "-Q", queues, "--concurrency", os.getenv("WORKER_CONCURRENCY", "2"),
            "-n", "pushbutton@%h", "--without-gossip", "--without-mingle",
            # Embedded beat: the periodic tasks, among them the reaper of lost runs.
            "--beat",
        ]  # fmt: skip
        web = [
            os.path.join(bindir, "gunicorn"), "portal.wsgi", "--bind", bind,
            "--workers", "1", "--threads", "8", "--access-logfile", "-", "--graceful-timeout", "5",
        ]  # fmt: skip
        procs = [subprocess.Popen(worker), subprocess.Popen(web)]
        self.stdout.write(f"\nPushbutton is running on http://{bind}/\n")
        self.stdout.write("Demo logins: " + ", ".join(f"{u} / {p}" for u, _, p, _ in USERS) + "\n")
        self.stdout.write("Press Ctrl-C to stop the web process and the worker.\n\n")
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not leave the children behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        code = max((p.returncode or 0) for p in procs)
        if code:
            sys.exit(code)
