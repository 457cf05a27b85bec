"""Launchday's Prometheus metrics: what head office watches on the morning.

Every process of the stack (uvicorn's workers, Celery's pool processes) counts into its
own files under PROMETHEUS_MULTIPROC_DIR when that is set (`make serve` sets it and
empties it at start), and /metrics adds them up, so a figure is the whole stack's, not
one worker's. prometheus_client picks its storage when this module first creates a
metric, so the variable must be in the environment before any process starts.

Two kinds of figures:

- Counted where they happen (counters and histograms below): admissions and refusals,
  queue time, batch sizes and times, emails and webhooks sent and failed.
- Read from the database at scrape (BacklogCollector): queue depth, allocator lag,
  outbox depth and oldest age. They are facts about rows, not about processes, so
  they are right after a restart and add up across machines.

Names follow Prometheus's conventions: `launchday_` prefix, `_total` for counters,
base units (seconds).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

ORDERS_ADMITTED = Counter(
    "launchday_orders_admitted",
    "Orders admitted (a new order row; a replayed Idempotency-Key is not counted).",
    # single: POST /api/v1/orders/; bulk: an item of POST /api/v1/orders/bulk; web: the
    # customer's order form. Walk-in sales at the counter are tickets, not admissions.
    ["path"],
)
ORDERS_REFUSED = Counter(
    "launchday_orders_refused",
    "Order requests refused, by reason: the API's error code, or for 503 overloaded why it shed.",
    ["reason"],
)
ADMISSION_QUEUE_SECONDS = Histogram(
    "launchday_admission_queue_seconds",
    "Time an order waited in its process's group commit before its batch was written.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "launchday_batch_size",
    "Orders per batch: admission (one group-commit INSERT) or allocation (one allocator batch).",
    ["stage"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 20000),
)
ALLOCATOR_BATCH_SECONDS = Histogram(
    "launchday_allocator_batch_seconds",
    "Wall time of one allocator batch, its transaction included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EMAILS = Counter(
    "launchday_emails",
    "Outbox email attempts by outcome: sent, retried (will try again), failed (given up).",
    ["outcome"],
)
WEBHOOKS = Counter(
    "launchday_webhooks",
    "Webhook delivery attempts by outcome: sent (2xx), retried, failed (given up).",
    ["outcome"],
)

_LAUNCHDAY_METRICS = (
    ORDERS_ADMITTED, ORDERS_REFUSED, ADMISSION_QUEUE_SECONDS, BATCH_SIZE, ALLOCATOR_BATCH_SECONDS, EMAILS, WEBHOOKS,
)  # fmt: skip


@dataclass(frozen=True)
class Backlog:
    """Work waiting in a table: how many rows, and since when the oldest has waited.
    Each app's selectors count their own (orders queued, outbox, webhook deliveries)."""

    waiting: int
    oldest_at: datetime.datetime | None

    def age_seconds(self, now: datetime.datetime) -> float:
        return max(0.0, (now - self.oldest_at).total_seconds()) if self.oldest_at else 0.0


def order_refused(reason: str) -> None:
    ORDERS_REFUSED.labels(reason=reason).inc()


def orders_admitted(*, path: str, count: int = 1) -> None:
    if count:
        ORDERS_ADMITTED.labels(path=path).inc(count)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_exited(pid: int | None = None) -> None:
    """Tell the multiprocess files that a process is gone (uvicorn's worker on shutdown,
    a Celery pool process): its live gauges stop counting; its counters are kept, since
    what it counted happened."""
    if multiprocess_dir():
        mark_process_dead(pid or os.getpid())


class BacklogCollector(Collector):
    """Gauges computed from the database at each scrape (see the module doc).

    `read` returns the backlog figures as a dict of name -> (help, value); it is given
    by the caller (config.views), which may import every app's selectors.
    """

    def __init__(self, read: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value) in self.read().items():
            yield GaugeMetricFamily(name, help_text, value=value)


def _summed() -> CollectorRegistry:
    """A registry of the stack's metrics: with PROMETHEUS_MULTIPROC_DIR every process's
    files added up, else (manage.py runserver, tests) this process's own."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        for collector in _LAUNCHDAY_METRICS:
            registry.register(collector)
    return registry


def exposition(*, backlog: Callable[[], dict[str, tuple[str, float]]]) -> bytes:
    """The text format of every metric, summed over the stack's processes."""
    registry = _summed()
    registry.register(BacklogCollector(backlog))
    return generate_latest(registry)


def counted() -> dict[str, float]:
    """The stack's counters now, summed over processes: `name` or `name{label=value}` ->
    value (head office's System page turns two readings into rates)."""
    totals: dict[str, float] = {}
    for family in _summed().collect():
        if family.type != "counter":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()))
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals
