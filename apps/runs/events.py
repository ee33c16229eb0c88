"""Turning ansible-runner events into stored RunEvents, in batches.

The runner calls `EventSink.add` for each event in its own loop, so `add` stays
cheap: it masks secrets, keeps what the pages need and buffers. Rows are
written with one bulk INSERT per batch (size or age), never one per event.
"""

import json
import re
import time

from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from apps.runs.models import Run, RunEvent

MASK = "••••"
# event_data keys worth keeping for the pages (diffs, results, summary counts).
KEPT_DATA = (
    "res",
    "diff",
    "duration",
    "start",
    "end",
    "play_pattern",
    "task_action",
    "ignore_errors",
)
STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


class SecretMasker:
    """Replaces each known secret value (longest first) with a mask."""

    def __init__(self, secrets):
        values = sorted(
            {s for s in secrets if isinstance(s, str) and len(s) >= 3}, key=len, reverse=True
        )
        self.pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def text(self, value: str) -> str:
        if self.pattern is None or not value:
            return value
        return self.pattern.sub(MASK, value)

    def data(self, value):
        if self.pattern is None:
            return value
        encoded = json.dumps(value)
        masked = self.text(encoded)
        return value if masked == encoded else json.loads(masked)


class EventSink:
    def __init__(self, run_id: int, *, secrets=(), batch_size=None, flush_seconds=None):
        self.run_id = run_id
        self.masker = SecretMasker(secrets)
        self.batch_size = batch_size or settings.RUN_EVENT_BATCH_SIZE
        self.flush_seconds = (
            flush_seconds if flush_seconds is not None else settings.RUN_EVENT_FLUSH_SECONDS
        )
        self.buffer: list[RunEvent] = []
        self.last_flush = time.monotonic()
        self.no_hosts_matched = False
        self.host_summary: dict = {}
        self.artifact_data: dict = {}
        self.stored = 0

    def add(self, event: dict) -> bool:
        """Take one runner event. Returns False so the runner keeps no copy on disk."""
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if name == "playbook_on_no_hosts_matched":
            self.no_hosts_matched = True
        elif name == "playbook_on_stats":
            self.host_summary = self._summary(data)
            self.artifact_data = self.masker.data(data.get("artifact_data") or {})
        kept = {k: data[k] for k in KEPT_DATA if k in data}
        created = event.get("created")
        self.buffer.append(
            RunEvent(
                run_id=self.run_id,
                counter=event.get("counter", 0),
                event=name[:64],
                created=parse_datetime(created) if isinstance(created, str) else created,
                host=(data.get("host") or data.get("remote_addr") or "")[:200],
                play=(data.get("play") or "")[:500],
                task=(data.get("task") or "")[:500],
                start_line=event.get("start_line", 0),
                end_line=event.get("end_line", 0),
                stdout=self.masker.text(event.get("stdout", "")),
                failed=name in ("runner_on_failed", "runner_on_unreachable")
                and not data.get("ignore_errors"),
                changed=bool((data.get("res") or {}).get("changed"))
                if isinstance(data.get("res"), dict)
                else False,
                data=self.masker.data(kept) if kept else {},
            )
        )
        if len(self.buffer) >= self.batch_size:
            self.flush()
        return False

    def tick(self) -> None:
        """Called often by the runner loop: write what has waited long enough."""
        if self.buffer and time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        with transaction.atomic():
            # A retried batch (after a dropped connection) must not duplicate rows.
            RunEvent.objects.bulk_create(batch, ignore_conflicts=True)
            Run.objects.filter(pk=self.run_id).update(
                event_count=max(e.counter for e in batch),
                line_count=max(e.end_line for e in batch),
            )
        self.stored += len(batch)

    @staticmethod
    def _summary(data: dict) -> dict:
        hosts: dict[str, dict[str, int]] = {}
        for key, label in STATS_KEYS.items():
            for host, count in (data.get(key) or {}).items():
                hosts.setdefault(host, dict.fromkeys(STATS_KEYS.values(), 0))[label] = count
        for host in data.get("processed") or {}:
            hosts.setdefault(host, dict.fromkeys(STATS_KEYS.values(), 0))
        return hosts
