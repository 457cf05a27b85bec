"""What the database says while the crowd runs: queue depth, allocator lag, stock, emails.

A thread reads a few aggregates every half second. Allocator lag is the age of the oldest
order still queued (admitted, not yet allocated or waitlisted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from django.db import connection
from django.db.models import Count, F, Min
from django.utils import timezone

from customers.models import Message
from inventory.models import Stock
from inventory.services import location_online_pool
from orders.models import Order

INTERVAL = 0.5


@dataclass
class Sample:
    t: float
    queued: int
    waitlisted: int
    allocated: int
    allocator_lag: float
    online_available: dict[str, int]
    emails_sent: int
    emails_waiting: int


@dataclass
class Sampler:
    launch_id: int
    since: object  # datetime: messages and orders of this run only
    started: float  # time.monotonic() of the run's t = 0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.samples.append(self.sample())
                self._stop.wait(INTERVAL)
        finally:
            connection.close()

    def sample(self) -> Sample:
        t = time.monotonic() - self.started
        orders = Order.objects.filter(launch_id=self.launch_id, created_at__gte=self.since)
        by_status = dict(orders.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        oldest = orders.filter(status=Order.Status.QUEUED).aggregate(m=Min("created_at"))["m"]
        lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        online = {
            code: available
            for code, available in Stock.objects.filter(
                location=location_online_pool(), sku__launches__id=self.launch_id
            )
            .annotate(available=F("on_hand") - F("reserved"))
            .values_list("sku__code", "available")
        }
        messages = Message.objects.filter(launch_id=self.launch_id, created_at__gte=self.since)
        sent = messages.filter(status=Message.Status.SENT).count()
        return Sample(
            t=round(t, 2),
            queued=by_status.get(Order.Status.QUEUED, 0),
            waitlisted=by_status.get(Order.Status.WAITLISTED, 0),
            allocated=by_status.get(Order.Status.ALLOCATED, 0),
            allocator_lag=round(max(lag, 0.0), 3),
            online_available=online,
            emails_sent=sent,
            emails_waiting=messages.filter(
                status__in=[Message.Status.PENDING, Message.Status.SENDING]
            ).count(),
        )


def metrics_scrape(url: str) -> dict[str, float] | None:
    """The stack's /metrics, when it answers (Prometheus text): Launchday's own series, summed by name."""
    try:
        response = httpx.get(url.rstrip("/") + "/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or "text/plain" not in response.headers.get("content-type", ""):
        return None
    totals: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line.startswith("launchday_"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals
