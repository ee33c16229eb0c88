from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.audit import selectors
from apps.audit.constants import READ_LOG, Outcome, Via
from apps.audit.exports import csv_chunks, jsonl_chunks
from apps.audit.forms import KNOWN_VERBS, AuditFilterForm, CursorForm
from apps.audit.services import audit_event_hash, audit_record, audit_search
from apps.audit.tasks import audit_chain_verify

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", csv_chunks),
    "jsonl": ("application/x-ndjson; charset=utf-8", jsonl_chunks),
}


def audit_reader_required(view):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.has_perm(READ_LOG):
            raise PermissionDenied("Only auditors and Ops read the audit log.")
        return view(request, *args, **kwargs)

    return wrapped


def _status(context: dict) -> dict:
    services, environments = selectors.audit_scope_choices()
    return {
        "verification": selectors.audit_verification_latest(),
        "checkpoint": selectors.audit_checkpoint_latest(),
        "services": services,
        "environments": environments,
        **context,
    }


def _without_errors(form: AuditFilterForm, cursor: CursorForm):
    """The filters and cursor as given, less those in error: what the page still shows
    while the message beside a bad field says what to fix."""
    bad = {*form.errors, *cursor.errors}
    kept = {k: v for k, v in form.data.items() if k not in bad}
    form, cursor = AuditFilterForm(kept), CursorForm(kept if not cursor.errors else {})
    if not (form.is_valid() and cursor.is_valid()):
        form, cursor = AuditFilterForm({}), CursorForm({})
        form.is_valid(), cursor.is_valid()
    return form, cursor


@audit_reader_required
def audit_list(request):
    """The log, filtered; a bad filter is said beside its field (400), and the rows the
    other filters select are still shown."""
    form, cursor = AuditFilterForm(request.GET), CursorForm(request.GET)
    context = {"form": form, "cursor": cursor, "verbs": KNOWN_VERBS, "outcomes": Outcome}
    status = 200
    searched = form, cursor
    if not (form.is_valid() and cursor.is_valid()):
        status, searched = 400, _without_errors(form, cursor)
    page = audit_search(
        form=searched[0], cursor=searched[1], actor=request.user, via=Via.WEB, request=request
    )
    query = urlencode(searched[0].raw())
    context.update(
        page=page,
        query=query,
        partial=status == 400,
        paged=any(v is not None for v in searched[1].cleaned_data.values()),
    )
    return render(request, "audit/audit_list.html", _status(context), status=status)


@audit_reader_required
@require_POST
def audit_verify_now(request):
    """Walk the chain now, as the daily task does; the page shows the result."""
    audit_chain_verify()
    audit_record(actor=request.user, via=Via.WEB, verb="audit.verify", request=request)
    return redirect("audit:list")


@audit_reader_required
def audit_detail(request, event_id: int):
    event = selectors.audit_event_get(event_id=event_id)
    if event is None:
        raise Http404("No such audit row.")
    previous, following = selectors.audit_event_neighbours(event=event)
    audit_record(
        actor=request.user,
        via=Via.WEB,
        verb="audit.view",
        object_type="audit.auditevent",
        object_id=str(event.pk),
        object_repr=f"#{event.pk} {event.verb}",
        request=request,
    )
    details = dict(event.details)
    changes = details.pop("changes", None)
    return render(
        request,
        "audit/audit_detail.html",
        {
            "event": event,
            "changes": changes if isinstance(changes, dict) else None,
            "details": details,
            "hash_ok": audit_event_hash(event) == event.hash,
            "chained": event.prev_hash == (previous.hash if previous else "0" * 64)
            and (previous is None or previous.id == event.id - 1),
            "previous": previous,
            "following": following,
            # A link by id only: the run's own page decides who sees it (every reader of
            # the log does), and the audit log needs nothing of the runs app.
            "run_url": reverse("runs:detail", args=[event.run_id]) if event.run_id else None,
        },
    )


@audit_reader_required
def audit_export(request):
    form = AuditFilterForm(request.GET)
    kind = request.GET.get("format", "csv")
    if kind not in EXPORT_FORMATS:
        form.is_valid()
        form.add_error(None, "Export as csv or jsonl.")
    if not form.is_valid():
        context = {"form": form, "cursor": CursorForm(), "verbs": KNOWN_VERBS}
        return render(request, "audit/audit_list.html", _status(context), status=400)
    up_to = selectors.audit_head_sequence()
    audit_record(
        actor=request.user,
        via=Via.WEB,
        verb="audit.export",
        details={"filters": form.raw(), "format": kind, "up_to": up_to},
        request=request,
    )
    content_type, chunks = EXPORT_FORMATS[kind]
    rows = selectors.audit_export_rows(filters=form.filters(), up_to=up_to)
    response = StreamingHttpResponse(chunks(rows), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{kind}"'
    return response
