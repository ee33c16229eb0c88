"""What the protection covers, and how its parts are named when missing."""

from typing import NamedTuple

from apps.audit.chain import FIELDS

REFUSED = "The audit log is append-only"
# What each table must keep for the log to be checked: every column the chain hashes.
COLUMNS = {
    "audit_auditevent": (*FIELDS, "hash"),
    "audit_audithead": ("id", "last_id", "last_hash"),
    "audit_auditcheckpoint": ("id", "sequence", "hash", "signed_at", "key_id", "signature"),
}
KINDS = ("table", "column", "function", "trigger")  # the order problems are reported in


class TriggerError(Exception):
    """The protection cannot be installed here; the message says why."""


class Missing(NamedTuple):
    """A part of the protection that is missing or altered."""

    kind: str  # one of KINDS
    name: str
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def damages_the_log(self) -> bool:
        """A table or a column the chain hashes is gone: the log cannot be walked."""
        return self.kind in ("table", "column")
