"""Request-wide middleware: the reader's time zone; input no view can read, refused."""

import logging
import zoneinfo
from urllib.parse import unquote_to_bytes

from django.db import DataError
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils import timezone

from portal.parsers import MAX_BODY_BYTES, BadJSON, json_loads

TIME_ZONE_COOKIE = "pushbutton_tz"
log = logging.getLogger(__name__)


class ReaderTimeZoneMiddleware:
    """Activates the time zone the reader's browser reported (static/js/portal.js keeps it
    in a cookie), so the log's line times on the page and in the download are the
    reader's local times, and agree. Left active for the whole request, streamed
    responses included; without the cookie (or with a name that is no zone), UTC.
    Times that carry their zone ({% timestamp %}, the API, the audit log) are unaffected."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = request.COOKIES.get(TIME_ZONE_COOKIE, "")
        try:
            zone = zoneinfo.ZoneInfo(name) if name and len(name) <= 64 else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        return self.get_response(request)


def input_error_reason(exc: BaseException) -> str:
    """The reason to answer with (a 400) to an error that only the request's input can
    cause, though no check refused it first; "" for any other error. The checks refuse
    what they know; this is the net below them, on pages and in the API alike."""
    if isinstance(exc, RecursionError):
        return "The request is nested too deep."
    if isinstance(exc, UnicodeError):
        return "The request is not valid UTF-8 text."
    if isinstance(exc, ValueError | OverflowError | DataError):
        # No refusal the code chose: logged with its traceback, to be handled where it arose.
        log.error("A request raised %s; answered 400.", type(exc).__name__, exc_info=exc)
        return "The request holds a value that is malformed or out of range."
    return ""


MAX_QUERY_CHARS = 8192
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _wsgi_bytes(value: str) -> bytes:
    """The bytes a WSGI string stands for (PEP 3333: latin-1), or of any str given."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _form_text_refusal(raw: bytes, what: str) -> str:
    """Why a query string or url-encoded body cannot be read, or ""."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return f"The {what} is not UTF-8 text once its %-escapes are decoded."
    if "\x00" in text:
        return f"The {what} holds a NUL character (%00)."
    return ""


class RequestInputMiddleware:
    """Refuses, before any view runs, what no view can read: a query string or form body
    that is not UTF-8 or holds NUL characters (PostgreSQL stores no NUL; Django would
    turn bad bytes into U+FFFD), a query string longer than MAX_QUERY_CHARS, and under
    /api/ a JSON body json_loads refuses (whether or not the view reads its body).
    A 400 with the reason: plain text to a browser navigating, JSON ({"detail"}) to the
    API and to the pages' scripts (the log search shows `detail`)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if reason := self.refusal(request):
            return self.refuse(request, reason)
        return self.get_response(request)

    def process_exception(self, request, exception):
        """A page's view failed on a value only the input could hold (a day past the
        calendar's last): a 400, not a 500. (The API has its exception handler.)"""
        reason = input_error_reason(exception)
        return self.refuse(request, reason) if reason else None

    @staticmethod
    def refuse(request, reason: str):
        if "text/html" in request.headers.get("Accept", ""):  # a browser, navigating
            return HttpResponseBadRequest(reason, content_type="text/plain; charset=utf-8")
        return JsonResponse({"detail": reason}, status=400)

    @staticmethod
    def refusal(request) -> str:
        query = request.META.get("QUERY_STRING", "")
        if len(query) > MAX_QUERY_CHARS:
            return f"The query string is too long: at most {MAX_QUERY_CHARS} characters."
        if reason := _form_text_refusal(_wsgi_bytes(query), "query string"):
            return reason
        content_type = request.content_type or ""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return "The Content-Length header is not a number."
        if not length or request.method in ("GET", "HEAD"):
            return ""
        if content_type == "application/x-www-form-urlencoded":
            return _form_text_refusal(request.body, "form")
        api = request.path.startswith("/api/")
        if content_type == "multipart/form-data" and not api:
            values = [v for _, vs in request.POST.lists() for v in vs]
            if any("\x00" in v for v in [*values, *request.POST]):
                return "The form holds a NUL character."
            return ""
        if api and content_type.endswith(("/json", "+json")):
            if length > MAX_BODY_BYTES:
                return f"The request body is larger than {MAX_BODY_BYTES} bytes."
            try:
                json_loads(request.body)
            except BadJSON as exc:
                return str(exc)
        return ""
