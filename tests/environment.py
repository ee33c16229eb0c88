"""Loaded first (`-p tests.environment`): the test run's own var/ folder and queue.

Set before Django reads its settings, so the Celery worker the tests start
inherits the same values.
"""

import os
import uuid
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
os.environ.setdefault("VAR_DIR", str(BASE / "var" / "test"))
# A queue of this test session's own, so no stale message from an earlier run is taken.
os.environ.setdefault("CELERY_DEFAULT_QUEUE", f"test-{uuid.uuid4().hex[:12]}")
# The housekeeping (follow-ups, notifications, the periodic tasks) has a queue of its own;
# the session's worker consumes both (tests/conftest.celery_worker).
os.environ.setdefault(
    "CELERY_HOUSEKEEPING_QUEUE", f"{os.environ['CELERY_DEFAULT_QUEUE']}-housekeeping"
)
# Under pytest-xdist each worker process is a test session of its own: its own var/
# folder (SQLite database, filesystem broker, mirrors) and its own queues, derived from
# the controller's values it inherits. On a shared broker (Redis), a shared queue would
# let one process's worker take another's follow-ups and miss their runs in its own
# test database.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("VAR_DIR", "CELERY_DEFAULT_QUEUE", "CELERY_HOUSEKEEPING_QUEUE"):
        os.environ[name] = f"{os.environ[name]}-{worker}"
# The workers the tests start write their heartbeat rows often (tests/workers).
os.environ.setdefault("WORKER_HEARTBEAT_SECONDS", "2")
# Playwright's sync API keeps an event loop running in the test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
