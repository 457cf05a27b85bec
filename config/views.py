"""Project-wide pages that belong to no app: the brand stylesheet, /metrics, head office's
System page."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from config.client_ip import client_ip
from config.context_processors import brand_palette
from config.metrics import exposition
from config.polls import panel_shared
from config.watch import RATE_WINDOW_SECONDS, system_figures
from customers.selectors import outbox_backlog
from orders.selectors.launches import allocator_backlog
from stores.access import HtmxHttpRequest, head_office_required
from stores.selectors import webhook_backlog


@require_GET
@cache_control(public=True, max_age=86400)
def brand_stylesheet(request: HttpRequest) -> HttpResponse:
    """The brand colours as CSS custom properties.

    A stylesheet rather than an inline style, so a Content-Security-Policy need not allow
    inline styles; the link carries a version of the colour, so a change shows at once.
    """
    palette = brand_palette(settings.BRAND_COLOUR)
    body = (
        f":root {{ --brand: {palette['brand']}; --on-brand: {palette['on_brand']}; "
        f"--accent: {palette['link']}; }}\n"
    )
    return HttpResponse(body, content_type="text/css; charset=utf-8")


def backlog_figures() -> dict[str, tuple[str, float]]:
    """The gauges read from the database at each scrape (config.metrics.BacklogCollector)."""
    now = timezone.now()
    queued, outbox, webhooks = allocator_backlog(), outbox_backlog(), webhook_backlog()
    return {
        "launchday_orders_queued": ("Orders admitted and not yet settled by the allocator.", queued.waiting),
        "launchday_allocator_lag_seconds": (
            "Age of the oldest order the allocator has not settled yet (0: none waits).",
            queued.age_seconds(now),
        ),
        "launchday_outbox_depth": ("Emails waiting to be sent (pending or being sent).", outbox.waiting),
        "launchday_outbox_oldest_age_seconds": ("Age of the oldest email waiting.", outbox.age_seconds(now)),
        "launchday_webhooks_pending": ("Webhook deliveries waiting to be made.", webhooks.waiting),
        "launchday_webhooks_oldest_age_seconds": (
            "Age of the oldest webhook delivery waiting.",
            webhooks.age_seconds(now),
        ),
    }


def metrics_allowed(request: HttpRequest) -> bool:
    """From this machine (a Prometheus beside the app), or with `Authorization: Bearer
    <METRICS_TOKEN>` from anywhere when that token is set."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    address = client_ip(request)
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape: every process's counters summed, and the backlog gauges."""
    if not metrics_allowed(request):
        return HttpResponse("Forbidden: /metrics answers loopback or a bearer token.\n", status=403,
                            content_type="text/plain; charset=utf-8")  # fmt: skip
    return HttpResponse(exposition(backlog=backlog_figures), content_type=CONTENT_TYPE_LATEST)


@require_GET
@never_cache
@head_office_required
@panel_shared
def system(request: HtmxHttpRequest) -> HttpResponse:
    """Head office's System page, or (for htmx polling) just its live panel."""
    template = "system.html#system-panel" if request.htmx else "system.html"
    return render(request, template, {"figures": system_figures(), "rate_window": RATE_WINDOW_SECONDS})
