"""What head office's System page shows on the morning: is each service there, how fast
orders are admitted and refused, and whether the allocator, the outbox and the webhook
senders keep up. Read from the same sources as /readyz and /metrics, so the page and the
dashboards never disagree."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from config.health import readiness
from config.metrics import counted
from customers.selectors import outbox_backlog, outbox_failed_count
from orders.selectors.launches import allocator_backlog
from stores.selectors import webhook_backlog, webhook_failed_count

# Rates are the change between two readings of the counters at least this far apart
# (kept in the shared cache, so every head-office page and process sees the same rate).
RATE_WINDOW_SECONDS = 5.0
_READING_KEY = "system-page:counters"
# Every head-office screen polls the panel every 2 s, and asking the services afresh opens
# a new connection to each (~16 of the panel's ~26 ms at launch scale): each process shares
# one answer this long, in memory (not the cache, which may be the service that is away).
# An outage still shows within a second; /readyz asks afresh every time.
READINESS_SHARED_SECONDS = 1.0
_shared_readiness: tuple[float, dict[str, str]] | None = None


@dataclass(frozen=True)
class Rates:
    admitted_per_second: float | None = None
    refused_per_second: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SystemFigures:
    services: dict[str, str]
    admitted_total: float
    refused_total: dict[str, float]
    rates: Rates
    # None: the database did not answer.
    queued: int | None
    allocator_lag_seconds: float | None
    outbox_depth: int | None
    outbox_oldest_seconds: float | None
    emails_sent: float
    emails_failed: int | None
    webhooks_pending: int | None
    webhooks_oldest_seconds: float | None
    webhooks_failed: int | None

    @property
    def ready(self) -> bool:
        return all(state == "OK" for state in self.services.values())


def _by_label(totals: dict[str, float], name: str, label: str) -> dict[str, float]:
    prefix = f"{name}{{{label}="
    return {key[len(prefix) : -1]: value for key, value in totals.items() if key.startswith(prefix)}


def _rates(totals: dict[str, float]) -> Rates:
    """Per-second rates from the last reading kept in the cache; a reading younger than
    RATE_WINDOW_SECONDS is not replaced, so a page polled often still sees a steady rate."""
    now = time.time()
    try:
        kept = cache.get(_READING_KEY)
    except Exception:  # Redis away: the page still shows totals (and says Redis is away)
        kept = None
    if kept is None or now - kept["at"] >= RATE_WINDOW_SECONDS:
        # Redis away: rates wait for it; nothing else depends on them.
        with contextlib.suppress(Exception):
            cache.set(
                _READING_KEY,
                {"at": now, "totals": totals, "previous": kept and {k: kept[k] for k in ("at", "totals")}},
                timeout=600,
            )
        previous = kept
    else:
        previous = kept.get("previous")
        totals, now = kept["totals"], kept["at"]
    if not previous or now - previous["at"] <= 0:
        return Rates()
    seconds = now - previous["at"]
    before = previous["totals"]

    def rate(key: str) -> float:
        return max(0.0, totals.get(key, 0.0) - before.get(key, 0.0)) / seconds

    admitted = sum(rate(k) for k in totals if k.startswith("launchday_orders_admitted_total"))
    refused = {
        reason: rate(f"launchday_orders_refused_total{{reason={reason}}}")
        for reason in _by_label(totals, "launchday_orders_refused_total", "reason")
    }
    return Rates(admitted_per_second=admitted, refused_per_second={k: v for k, v in refused.items() if v})


def readiness_shared() -> dict[str, str]:
    """readiness(), asked at most once per READINESS_SHARED_SECONDS in this process."""
    global _shared_readiness
    kept = _shared_readiness
    if kept is not None and time.monotonic() - kept[0] < READINESS_SHARED_SECONDS:
        return kept[1]
    services = readiness()
    _shared_readiness = (time.monotonic(), services)
    return services


def system_figures() -> SystemFigures:
    """Every figure of the page. With PostgreSQL away the database's figures are None (the
    page says "unknown") and the services list says why: the page must work in an outage."""
    now = timezone.now()
    totals = counted()
    services = readiness_shared()
    try:
        queued, outbox, webhooks = allocator_backlog(), outbox_backlog(), webhook_backlog()
        failed = (outbox_failed_count(), webhook_failed_count())
    except DatabaseError:
        queued = outbox = webhooks = None
        failed = (None, None)
    return SystemFigures(
        services=services,
        admitted_total=sum(_by_label(totals, "launchday_orders_admitted_total", "path").values()),
        refused_total=_by_label(totals, "launchday_orders_refused_total", "reason"),
        rates=_rates(totals),
        queued=queued.waiting if queued else None,
        allocator_lag_seconds=queued.age_seconds(now) if queued else None,
        outbox_depth=outbox.waiting if outbox else None,
        outbox_oldest_seconds=outbox.age_seconds(now) if outbox else None,
        emails_sent=_by_label(totals, "launchday_emails_total", "outcome").get("sent", 0.0),
        emails_failed=failed[0],
        webhooks_pending=webhooks.waiting if webhooks else None,
        webhooks_oldest_seconds=webhooks.age_seconds(now) if webhooks else None,
        webhooks_failed=failed[1],
    )
