"""Notification delivery: from a run's end to the webhook receiver, through a real worker.

For each backend, in a process of its own: a webhook receiver on loopback that answers
500 to a share of the attempts (`--fail-share`, default 0.2), a rule sending it every
run's end, a real Celery worker (deliveries are its tasks; retries after
NOTIFY_RETRY_SECONDS, shortened here to 1,2,4,8 s so the bench ends); then `--runs` runs
(default 100) end one after the other through the one door out (`run_end`). It prints:

- **first attempt**: from the run's end (its commit) to the receiver getting the
  delivery the first time, median and p99;
- **delivered**: to the receiver answering 2xx, median and p99 (retries included);
- **lost**: runs whose delivery never got a 2xx within the wait — target **0**;
- **duplicated**: deliveries (by id) the receiver accepted more than once — target **0**.

    .venv/bin/python bench/notify.py [--runs 100] [--fail-share 0.2] [--only sqlite|postgres]
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import benchlib


def _receiver(fail_share: float):
    got = defaultdict(list)  # delivery id -> [(monotonic time, code)]
    rng = random.Random(11)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delivery = json.loads(body)["delivery"]
            with lock:
                code = 500 if rng.random() < fail_share else 200
                got[delivery].append((time.monotonic(), code))
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def _p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def backend_main(args) -> None:
    import os

    os.environ["NOTIFY_RETRY_SECONDS"] = "1,2,4,8"
    benchlib.django_setup()
    from django.utils import timezone

    from apps.notifications.models import Channel, Delivery, Rule
    from apps.notifications.services import channel_secrets_set
    from apps.runs.constants import RunStatus
    from apps.runs.models import Run
    from apps.runs.services import run_end
    from tests.factories import ActionFactory, EnvironmentFactory, RunFactory

    server, got = _receiver(args.fail_share)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    Rule.objects.all().delete()
    Channel.objects.filter(name="bench").delete()
    channel = Channel(name="bench", kind="webhook")
    channel_secrets_set(channel=channel, url=url)
    channel.save()
    Rule.objects.create(name="bench", channel=channel, events=["run.succeeded", "run.failed"])
    tag = uuid.uuid4().hex[:8]
    action = ActionFactory(
        service__slug=f"notify-{tag}", playbook_version__source__name=f"notify-{tag}"
    )
    environment = EnvironmentFactory(slug=f"notify-{tag}")
    worker = benchlib.worker_start(Path("worker-notify.log"))
    ended_at = {}
    try:
        for _ in range(args.runs):
            run = RunFactory(
                action=action,
                environment=environment,
                requested_by=None,
                requested_by_name="bench",
                status=RunStatus.RUNNING,
                started_at=timezone.now(),
            )
            run_end(run=run, status=RunStatus.SUCCESSFUL, rc=0)
            ended_at[run.pk] = time.monotonic()
        deadline = time.monotonic() + args.wait
        ids = {}
        while time.monotonic() < deadline:
            ids = dict(Delivery.objects.filter(run__in=ended_at).values_list("run", "id"))
            done = [str(i) for i in ids.values() if any(c < 300 for _, c in got.get(str(i), []))]
            if len(ids) == args.runs and len(done) == args.runs:
                break
            time.sleep(0.5)
    finally:
        benchlib.worker_stop(worker)
        server.shutdown()
    first, delivered, lost, duplicated = [], [], 0, 0
    for run_id, delivery_id in ids.items():
        tries = got.get(str(delivery_id), [])
        ok = [t for t, code in tries if code < 300]
        if not ok:
            lost += 1
            continue
        first.append(tries[0][0] - ended_at[run_id])
        delivered.append(ok[0] - ended_at[run_id])
        duplicated += len(ok) > 1
    lost += args.runs - len(ids)
    result = {
        "backend": benchlib.backend_label(),
        "runs": args.runs,
        "first": [statistics.median(first), _p99(first)] if first else None,
        "delivered": [statistics.median(delivered), _p99(delivered)] if delivered else None,
        "lost": lost,
        "duplicated": duplicated,
        "attempts": sum(len(v) for v in got.values()),
    }
    Path(args.result).write_text(json.dumps(result))
    Run.objects.filter(pk__in=ended_at).delete()


def main(args) -> int:
    backends = [args.only] if args.only else list(benchlib.BACKENDS)
    rows = []
    for backend in backends:
        env = benchlib.backend_env(backend, name="notify")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--runs", str(args.runs),
                       "--fail-share", str(args.fail_share), "--wait", str(args.wait)]  # fmt: skip
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            r = json.loads(Path(out.name).read_text())

        def ms(pair):
            return (
                ("-", "-") if pair is None else (f"{pair[0] * 1000:.0f}", f"{pair[1] * 1000:.0f}")
            )

        rows.append([r["backend"], r["runs"], *ms(r["first"]), *ms(r["delivered"]), r["attempts"],
                     r["lost"], r["duplicated"]])  # fmt: skip
    import os

    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    headers = ["backend", "runs", "first p50 ms", "first p99 ms", "delivered p50 ms",
               "delivered p99 ms", "attempts", "lost", "duplicated"]  # fmt: skip
    print(benchlib.table(headers, rows))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--fail-share", type=float, default=0.2)
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for delivery")
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
