"""What the database and /metrics say while the crowd runs: queue depth, allocator lag,
stock, emails, and the stack's own counters.

A thread reads a few aggregates every half second. Allocator lag is the age of the oldest
order still queued (admitted, not yet allocated or waitlisted). A second thread scrapes
/metrics about every second, so a slow or refused scrape (the stack is busy admitting)
never delays the database's samples: a scrape that fails is kept as a gap, never fatal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from django.db import connection
from django.db.models import Count, F, Min
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from customers.models import Message
from inventory.models import Stock
from inventory.services import location_online_pool
from orders.models import Order

INTERVAL = 0.5
SCRAPE_INTERVAL = 1.0
# Short: a scrape slower than its interval says nothing in time, and the next one comes.
SCRAPE_TIMEOUT = httpx.Timeout(2.0, connect=0.5)


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
    orders: int = 0  # orders of the run through the API or the website (walk-ins' are not admissions)


@dataclass
class Scrape:
    """One reading of /metrics: `series` is None when it failed (`error` says why)."""

    t: float
    series: dict[str, float] | None
    error: str = ""
    seconds: float = 0.0  # how long the scrape took


@dataclass
class Sampler:
    launch_id: int
    since: object  # datetime: messages and orders of this run only
    started: float  # time.monotonic() of the run's t = 0
    metrics_url: str | None = None  # the stack's base URL: also scrape its /metrics
    samples: list[Sample] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._scraper = threading.Thread(target=self._scrape_loop, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.metrics_url:
            self._scraper.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._scraper.is_alive():
            self._scraper.join(timeout=10)
        return self.samples

    def _scrape_loop(self) -> None:
        assert self.metrics_url is not None
        with httpx.Client(timeout=SCRAPE_TIMEOUT) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    series = metrics_read(client, self.metrics_url)
                    error = "" if series is not None else "not answering /metrics"
                except (httpx.HTTPError, ValueError) as exc:  # no answer in time, or not the text format
                    series, error = None, type(exc).__name__
                done = time.monotonic()
                self.scrapes.append(
                    Scrape(
                        # The counters were read somewhere inside the request: its middle.
                        t=round((began + done) / 2 - self.started, 2),
                        series=series,
                        error=error,
                        seconds=round(done - began, 3),
                    )
                )
                self._stop.wait(max(0.0, SCRAPE_INTERVAL - (done - began)))

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
        by_status: dict[str, int] = {}
        admitted = 0
        for status, channel, n in (
            orders.values_list("status", "channel")
            .annotate(n=Count("pk"))
            .values_list("status", "channel", "n")
        ):
            by_status[status] = by_status.get(status, 0) + n
            admitted += n if channel != Order.Channel.STORE else 0
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
            orders=admitted,
        )


# The series the rehearsal compares with the database (orders.rehearsal.agreement), each
# kept per label set; histograms' buckets say nothing here and would only weigh on the JSON.
KEPT_SUFFIXES = ("_total", "_sum", "_count")


def series_key(name: str, labels: dict[str, str]) -> str:
    """`name` or `name{label=value,...}` (labels sorted): one series, as the report keys it."""
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")


def metrics_parse(text: str) -> dict[str, float]:
    """Launchday's series from the Prometheus text format: counters, histogram sums and
    counts, and the gauges, summed per label set (the multiprocess collector already adds
    the processes up; a sum keeps a repeated series honest all the same)."""
    series: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("launchday_"):
            continue
        for sample in family.samples:
            if family.type != "gauge" and not sample.name.endswith(KEPT_SUFFIXES):
                continue
            key = series_key(sample.name, sample.labels)
            series[key] = series.get(key, 0.0) + sample.value
    return series


def metrics_read(client: httpx.Client, url: str) -> dict[str, float] | None:
    """One scrape of the stack's /metrics with `client`; None when it does not serve them."""
    response = client.get(url.rstrip("/") + "/metrics")
    if response.status_code != 200 or "text/plain" not in response.headers.get("content-type", ""):
        return None
    return metrics_parse(response.text)


def metrics_scrape(url: str) -> dict[str, float] | None:
    """The stack's /metrics now, when it answers: Launchday's series, per label set."""
    try:
        with httpx.Client(timeout=5) as client:
            return metrics_read(client, url)
    except (httpx.HTTPError, ValueError):
        return None
