"""/metrics: the portal's figures in Prometheus' text format, for whom settings allow."""

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from apps.insights.metrics import REGISTRY

log = logging.getLogger(__name__)


def _token_fits(request) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _address_allowed(address: str | None) -> bool:
    """Whether the TCP peer is in METRICS_ALLOWED_IPS. X-Forwarded-For is never read: any
    client can write it (behind a proxy, the peer is the proxy; docs/monitoring.md)."""
    if not address or not settings.METRICS_ALLOWED_IPS:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(
        ip in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_IPS
    )


def metrics_refusal(request) -> HttpResponse | None:
    """None when `request` may read the metrics; else the answer that says why not: 401
    (with WWW-Authenticate) when a token would let it in, 403 when only an address
    would, or when neither is configured (metrics are never open by default)."""
    if _token_fits(request) or _address_allowed(request.META.get("REMOTE_ADDR")):
        return None
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization")
        response = HttpResponse(
            "The bearer token is wrong.\n" if given else "A bearer token is needed.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if settings.METRICS_ALLOWED_IPS:
        reason = "This address may not read the metrics (METRICS_ALLOWED_IPS).\n"
    else:
        reason = "Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_IPS.\n"
    return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")


@require_GET
def metrics(request):
    """The figures of apps/insights/metrics.py, computed now from the database."""
    if (refusal := metrics_refusal(request)) is not None:
        log.warning(
            "/metrics refused to %s (%s).", request.META.get("REMOTE_ADDR"), refusal.status_code
        )
        return refusal
    # The text format every Prometheus reads (names here need none of 1.0.0's escaping).
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
