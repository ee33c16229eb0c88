import pytest

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from tests.clients import page_client


def record(verb: str = "test.thing", **kwargs) -> AuditEvent:
    """An audit row written by the service, with sensible defaults."""
    return audit_record(
        actor=kwargs.pop("actor", None), via=kwargs.pop("via", "cli"), verb=verb, **kwargs
    )


def rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("id"))


def all_text() -> str:
    """Everything the audit log holds, as one text (to look for what must not be there)."""
    return "\n".join(
        " ".join(str(value) for value in row)
        for row in AuditEvent.objects.values_list().order_by("id")
    )


@pytest.fixture(autouse=True)
def _checkpoints_of_this_test(settings, tmp_path):
    """Checkpoints go to a file of each test's own: the default one in var/ may hold
    those of another database (a worker's beat, an earlier session)."""
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "audit-checkpoints.jsonl")


@pytest.fixture
def auditor_client(auditor):
    return page_client(auditor)
