"""A run's log for its page: the live tail, earlier and later lines, a window around a
line, search, and the download."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from apps.runs import selectors
from apps.runs.views.detail import rerun_offer, run_or_404, run_state


def _line_number(request, name: str) -> int | None:
    """A line number from the query string, or None when it is not one."""
    value = request.GET.get(name, "")
    # isascii: "²" is a digit to isdigit() but not to int().
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


@login_required
def run_log(request, run_id):
    """The lines after `after` (an event counter), and the run's state, for the live page:
    the progress when something happened, the diffs once a dry run has ended."""
    run = run_or_404(request, run_id)
    after = _line_number(request, "after") if "after" in request.GET else 0
    if after is None:
        return HttpResponse("after must be an event counter", status=400)
    lines, last_counter, more = selectors.run_log_after(run=run, counter=after)
    ended = run.is_final and not more
    # The page has not shown that it started (its poller says so once it has).
    started = run.started_at is not None and request.GET.get("started") != "1"
    return render(
        request,
        "runs/_log_update.html",
        {
            "run": run,
            "lines": lines,
            "last_counter": last_counter,
            "more": more,
            # Its progress and facts (started at) when something happened; once it
            # ended, its buttons too (no Cancel) and where it stopped.
            **(run_state(run) if last_counter > after or run.is_final or started else {}),
            "diffs": selectors.run_diffs(run=run) if ended and run.check_mode else [],
            "ended": ended,
            **(rerun_offer(request.user, run) if ended else {}),
        },
    )


@login_required
def run_log_earlier(request, run_id):
    run = run_or_404(request, run_id)
    before = _line_number(request, "before")
    if before is None:
        return HttpResponse("before must be a line number", status=400)
    lines = selectors.run_log_before(run=run, line=before)
    first = lines[0].number if lines else 1
    return render(
        request,
        "runs/_log_earlier.html",
        {"run": run, "lines": lines, "earlier_from": first if first > 1 else None},
    )


@login_required
def run_log_download(request, run_id):
    """The whole log as plain text: line number, timestamp and text, as the page shows."""
    run = run_or_404(request, run_id)
    response = StreamingHttpResponse(
        selectors.run_log_text(run=run), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.log"'
    return response


# --- the log beyond its tail: later lines, a window around a line, search ----------
@login_required
def run_log_later(request, run_id):
    """The lines after line `after`, below a window of the log (and a button for more)."""
    run = run_or_404(request, run_id)
    after = _line_number(request, "after")
    if after is None:
        return HttpResponse("after must be a line number", status=400)
    lines = selectors.run_log_later(run=run, line=after)
    last = lines[-1].number if lines else after
    return render(
        request,
        "runs/_log_later.html",
        {"run": run, "lines": lines, "later_from": last if last < run.line_count else None},
    )


@login_required
def run_log_window(request, run_id):
    """The log's content around line `line` (a `#L123` link, a search match), with the
    buttons for the lines before and after it; `?line=tail` gives the tail the page
    first shows."""
    run = run_or_404(request, run_id)
    if request.GET.get("line") == "tail":
        lines, _ = selectors.run_log_tail(run=run)
    else:
        line = _line_number(request, "line")
        if line is None:
            return HttpResponse("line must be a line number or tail", status=400)
        lines = selectors.run_log_window(run=run, line=line)
    first = lines[0].number if lines else 1
    last = lines[-1].number if lines else 0
    return render(
        request,
        "runs/_log_window.html",
        {
            "run": run,
            "lines": lines,
            "earlier_from": first if first > 1 else None,
            "later_from": last if last < run.line_count else None,
        },
    )


SEARCH_MAX_CHARS = 200


def _search_query(request) -> tuple[str, JsonResponse | None]:
    query = request.GET.get("q", "")
    if not query.strip() or len(query) > SEARCH_MAX_CHARS or "\x00" in query:
        return query, JsonResponse(
            {"detail": f"q must be some text, at most {SEARCH_MAX_CHARS} characters."},
            status=400,
        )
    return query, None


@login_required
def run_log_search(request, run_id):
    """The first matches of `q` in the whole log, as JSON: the lines (at most
    SEARCH_HITS), and the count when they are all the matches. Otherwise the count is
    null and `count_url` gives it (it reads every event holding a match)."""
    run = run_or_404(request, run_id)
    query, refused = _search_query(request)
    if refused:
        return refused
    found = selectors.run_log_search(run=run, query=query, count=False)
    counted = found.total is not None
    return JsonResponse(
        {
            "q": query,
            "total": found.total,
            "upto": found.upto,
            "hits": found.hits,
            # More matches than the hits listed (on lines beyond the first SEARCH_HITS).
            "truncated": not counted or found.total > sum(count for _, count in found.hits),
            "count_url": None
            if counted
            else f"{reverse('runs:log_search_count', args=[run.pk])}?"
            + urlencode({"q": query, "upto": found.upto}),
        }
    )


@login_required
def run_log_search_count(request, run_id):
    """Every match of `q` in the log up to line `upto` (that of the first page), counted."""
    run = run_or_404(request, run_id)
    query, refused = _search_query(request)
    if refused:
        return refused
    upto = _line_number(request, "upto") if "upto" in request.GET else None
    if "upto" in request.GET and upto is None:
        return JsonResponse({"detail": "upto must be a line number."}, status=400)
    found = selectors.run_log_search(run=run, query=query, limit=0, upto=upto)
    return JsonResponse({"q": query, "total": found.total, "upto": found.upto})
