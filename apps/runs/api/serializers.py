"""What the runs API reads and writes: runs, launches (with their provenance), events,
and the errors it answers with."""

import re

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.environments.constants import WhenLocked
from apps.runs.constants import RunStatus
from apps.runs.models import SOURCE_COMMIT_MAX, SOURCE_REF_MAX, SOURCE_URL_MAX, RunEvent
from apps.runs.provenance import FIELDS as SOURCE_FIELDS
from apps.runs.services import run_wait_state

HEX = re.compile(r"^[0-9a-fA-F]+$")
COMMIT_MIN = 7  # the shortest abbreviated SHA git prints


class SourceSerializer(serializers.Serializer):
    """The build a launch deploys. `commit` is required; the rest is optional."""

    commit = serializers.CharField(
        min_length=COMMIT_MIN, max_length=SOURCE_COMMIT_MAX, help_text="The commit SHA, hex."
    )
    committed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it was committed (ISO 8601)."
    )
    ref = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_REF_MAX, help_text="Branch or tag."
    )
    repository = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_URL_MAX, help_text="http(s) URL."
    )
    pipeline_url = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_URL_MAX, help_text="http(s) URL."
    )
    job_url = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_URL_MAX, help_text="http(s) URL."
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(SOURCE_FIELDS))):
            raise serializers.ValidationError(
                {name: ["Unknown field of source."] for name in unknown}
            )
        return super().to_internal_value(data)

    def validate_commit(self, value: str) -> str:
        if not HEX.match(value):
            raise serializers.ValidationError("A commit SHA is hexadecimal, e.g. 3f9c2ab.")
        return value.lower()

    def validate_ref(self, value: str) -> str:
        if not value.isprintable():
            raise serializers.ValidationError("A ref has no control characters.")
        return value

    def _url(self, value: str) -> str:
        if value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except DjangoValidationError:
                raise serializers.ValidationError("Enter an http:// or https:// URL.") from None
        return value

    validate_repository = _url
    validate_pipeline_url = _url
    validate_job_url = _url


class WaitSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="Its place in line: 1 is next.")
    waiting_for = serializers.IntegerField(
        source="holder.pk", allow_null=True, help_text="The run holding the deploy lock."
    )
    reason = serializers.CharField(help_text="What it waits for, in a sentence.")


class FollowUpSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    action = serializers.CharField(source="action_slug")
    kind = serializers.CharField(source="action_kind")
    environment = serializers.CharField(source="environment.slug")
    status = serializers.CharField()


class ScheduledBySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="schedule_id")
    name = serializers.CharField(source="schedule.name")
    url = serializers.CharField(source="schedule.get_absolute_url")
    due_at = serializers.DateTimeField()


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    status = serializers.CharField()
    service = serializers.CharField(source="service.slug")
    action = serializers.CharField(source="action_slug")
    environment = serializers.CharField(source="environment.slug")
    parameters = serializers.JSONField()
    check = serializers.BooleanField(source="check_mode")
    version = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by_name")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    rc = serializers.IntegerField(allow_null=True)
    host_summary = serializers.JSONField()
    error = serializers.CharField()
    playbook = serializers.SerializerMethodField()
    verify = serializers.BooleanField(source="auto_verify")
    rollback_of = serializers.IntegerField(source="rollback_of_id", allow_null=True)
    reason = serializers.CharField()
    promoted_from = serializers.CharField(source="promoted_from.slug", allow_null=True)
    emergency = serializers.BooleanField()
    emergency_reason = serializers.CharField()
    triggered_by = serializers.IntegerField(
        source="triggered_by_id",
        allow_null=True,
        help_text="Set on runs the system launched by itself after that run succeeded.",
    )
    follow_up_error = serializers.CharField()
    source = SourceSerializer(
        allow_null=True, help_text="The build it deploys (commit, ref, pipeline), if known."
    )
    follow_ups = serializers.SerializerMethodField(
        help_text="The runs the system launched by itself after this one (its verification, "
        "promotions), oldest first."
    )
    awaits_follow_ups = serializers.BooleanField(
        help_text="It asked for its verification, which has not ended (or not begun) yet."
    )
    queued_at = serializers.DateTimeField(allow_null=True)
    worker = serializers.CharField(
        help_text="The Celery worker that took it, as name@host (its node name); empty "
        "until one did."
    )
    scheduled_by = serializers.SerializerMethodField(
        help_text="Set on runs a schedule launched (as the person who scheduled it): which "
        "schedule, and the time it was due."
    )
    waiting = serializers.SerializerMethodField(
        help_text="While it waits in the deploy queue: its place in line and what it waits for."
    )

    @extend_schema_field(FollowUpSerializer(many=True))
    def get_follow_ups(self, run) -> list:
        if self.context.get("created") or not run.may_have_follow_ups:
            # Launched by this request, going on, or nothing the system follows up:
            # nothing followed it, and no query asks.
            return []
        triggered = sorted(run.triggered.all(), key=lambda child: child.pk)
        return [_follow_up(child) for child in triggered]

    @extend_schema_field(ScheduledBySerializer(allow_null=True))
    def get_scheduled_by(self, run) -> dict | None:
        if self.context.get("created"):
            return None  # launched by this request, not by a schedule
        # The schedules app's Firing points at the run (a reverse relation, no import).
        try:
            firing = run.firing
        except ObjectDoesNotExist:
            return None
        return {
            "id": firing.schedule_id,
            "name": firing.schedule.name,
            "url": firing.schedule.get_absolute_url(),
            "due_at": _datetime(firing.due_at),
        }

    @extend_schema_field(WaitSerializer(allow_null=True))
    def get_waiting(self, run) -> dict | None:
        state = run_wait_state(run)
        if state is None:
            return None
        holder = state.holder
        return {
            "position": state.position,
            "waiting_for": None if holder is None else holder.pk,
            "reason": state.reason,
        }

    def get_playbook(self, run) -> dict:
        return {
            "path": run.playbook_path,
            "commit": run.playbook_commit,
            "content_hash": run.content_hash,
        }

    def to_representation(self, run) -> dict:
        """The fields above, written out: DRF's generic walk over them (a copy of every
        field per serializer, a lookup per source) was most of the CPU of an answer that
        `pushbutton wait` asks for every second. tests/runs/test_api_answers.py holds it
        to what the declared fields give, field by field."""
        promoted_from = run.promoted_from
        return {
            "id": run.pk,
            "url": run.get_absolute_url(),
            "status": str(run.status),
            "service": run.service.slug,
            "action": run.action_slug,
            "environment": run.environment.slug,
            "parameters": run.parameters,
            "check": bool(run.check_mode),
            "version": run.version,
            "requested_by": run.requested_by_name,
            "created_at": _datetime(run.created_at),
            "started_at": _datetime(run.started_at),
            "finished_at": _datetime(run.finished_at),
            "rc": run.rc,
            "host_summary": run.host_summary,
            "error": run.error,
            "playbook": self.get_playbook(run),
            "verify": bool(run.auto_verify),
            "rollback_of": run.rollback_of_id,
            "reason": run.reason,
            "promoted_from": None if promoted_from is None else promoted_from.slug,
            "emergency": bool(run.emergency),
            "emergency_reason": run.emergency_reason,
            "triggered_by": run.triggered_by_id,
            "follow_up_error": run.follow_up_error,
            "source": _source(run.source),
            "follow_ups": self.get_follow_ups(run),
            "awaits_follow_ups": bool(run.awaits_follow_ups),
            "queued_at": _datetime(run.queued_at),
            "worker": run.worker,
            "scheduled_by": self.get_scheduled_by(run),
            "waiting": self.get_waiting(run),
        }


# As DRF writes a time (ISO 8601, "Z" for UTC, in the request's time zone): a field that
# belongs to no serializer, as it needs none.
_DATETIME = serializers.DateTimeField()


def _datetime(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def _source(source: dict | None) -> dict | None:
    if source is None:
        return None
    return {**source, "committed_at": _datetime(source["committed_at"])}


def _follow_up(child) -> dict:
    """FollowUpSerializer's fields, written out as RunSerializer's are."""
    return {
        "id": child.pk,
        "url": child.get_absolute_url(),
        "action": child.action_slug,
        "kind": child.action_kind,
        "environment": child.environment.slug,
        "status": str(child.status),
    }


class RunPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True, help_text="The next (older) page.")
    previous = serializers.CharField(allow_null=True)
    results = RunSerializer(many=True)


class LaunchOptionsSerializer(serializers.Serializer):
    """What every launch may add: a follow-up verification, an emergency override."""

    verify = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Once the deploy succeeded, run the service's verify action by itself.",
    )
    emergency_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Overrides a freeze window, for who has the emergency right.",
    )
    when_locked = serializers.ChoiceField(
        choices=WhenLocked.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="When another run holds the service's deploy lock there: `refuse` (409) or "
        "`queue` (the run waits, status `waiting`, and starts when the lock frees, in "
        "arrival order, every rule checked again then). Default: the environment's setting.",
    )


class LaunchSerializer(LaunchOptionsSerializer):
    service = serializers.SlugField()
    action = serializers.SlugField()
    environment = serializers.SlugField()
    parameters = serializers.JSONField(required=False, default=dict)
    check = serializers.BooleanField(required=False, default=False)
    rollback_of = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The run (on this service and environment) whose change this one undoes.",
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, help_text="Of a rollback."
    )
    promoted_from = serializers.SlugField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The environment (before this one) the version is promoted from.",
    )
    source = SourceSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text="The build it deploys. Without one, a promotion or rollback carries that "
        "of the run it repeats.",
    )


class PromoteSerializer(LaunchOptionsSerializer):
    version = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="The version to promote (default: the newest verified on the environment "
        "before).",
    )


class RollbackSerializer(LaunchOptionsSerializer):
    version = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="The version to put back (default: the one before the current one).",
    )
    reason = serializers.CharField(max_length=2000, help_text="Why: kept on the run and audited.")


class RunListQuerySerializer(serializers.Serializer):
    service = serializers.SlugField(required=False)
    environment = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    user = serializers.CharField(required=False, max_length=150)
    commit = serializers.CharField(
        required=False,
        min_length=4,
        max_length=SOURCE_COMMIT_MAX,
        help_text="Runs of builds whose commit SHA starts with this.",
    )
    since = serializers.DateTimeField(required=False, help_text="Created at or after.")
    until = serializers.DateTimeField(required=False, help_text="Created before.")

    def validate_commit(self, value: str) -> str:
        if not HEX.match(value):
            raise serializers.ValidationError("A commit SHA is hexadecimal, e.g. 3f9c2ab.")
        return value.lower()


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = [
            "counter",
            "event",
            "created",
            "host",
            "play",
            "task",
            "start_line",
            "end_line",
            "stdout",
            "failed",
            "changed",
        ]
        extra_kwargs = {
            "stdout": {
                "help_text": "As Ansible printed it, for programs: colours, terminal escape "
                'sequences and control characters included; lines end at "\\n" '
                "(start_line/end_line count them). Clean it before showing it in a terminal."
            }
        }


class EventPageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.CharField()
    events = EventSerializer(many=True)


class LockHolderSerializer(serializers.Serializer):
    """The run that holds the deploy lock of a service and environment."""

    run = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    status = serializers.CharField()
    action = serializers.CharField(source="action_slug")
    requested_by = serializers.CharField(source="requested_by_name")


class MissingSerializer(serializers.Serializer):
    """What the promotion rule lacks for this version."""

    environment = serializers.CharField()
    version = serializers.CharField()
    deployed = serializers.BooleanField()
    verified = serializers.BooleanField()
    url = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)
    lock = LockHolderSerializer(required=False, help_text="409: the run holding the lock.")
    missing = MissingSerializer(
        required=False, help_text="409: the verification the promotion rule needs first."
    )
    queue = serializers.CharField(
        required=False, help_text="503: the queue no live worker consumes."
    )
