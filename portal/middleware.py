"""The reader's time zone, for what the server writes as a clock time."""

import zoneinfo

from django.utils import timezone

TIME_ZONE_COOKIE = "pushbutton_tz"


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
