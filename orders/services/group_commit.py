"""Group commit: concurrent single-order admissions written together, one statement a batch.

One INSERT per request caps admission below what the database can take: every request
pays a round trip, a transaction and a WAL flush of its own. Here each process keeps one
flusher thread. A request checks its rules in its own thread (or coroutine), then joins
the pending batch; the flusher takes everything pending, writes it with the bulk engine
(orders.services.bulk.candidates_admit: one multi-row INSERT, Idempotency-Keys settled in
the same transaction), commits, and hands each request its own row's outcome: its
reference, sequence and place in the queue, or its own refusal. One bad row never fails
its neighbours; a failure of the whole statement (the database away) fails that batch
only, and nobody in it was told 202.

The batch window adapts by itself: an idle flusher writes the first request at once (no
added wait), and while a batch is being written the next one gathers, so batches grow
exactly as fast as requests arrive faster than batches commit.

Sequence numbers follow the order requests joined the batch; with several processes each
writes its own batches, and the admission lock keeps the allocator's watermark honest
across all of them (orders.services.locks).

Each request's log context (its X-Request-ID, launch, partner) joins the batch with it,
and the flusher restores it around that request's own work: an order written alone, and
the allocator nudge of each launch in a batch (under the first order of that launch in
the batch, as a coalesced nudge carries the first single order's); the batch's own
failure line lists every request id of the batch.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.cache import NotCached
from config.logcontext import log_context_saved
from config.metrics import ADMISSION_QUEUE_SECONDS, BATCH_SIZE
from orders.codes import ErrorCode
from orders.models import Order
from orders.selectors.orders import OrderSummary, order_summary
from orders.services.admission import (
    AdmissionRefused,
    OrderRequest,
    eligible_or_refused,
)
from orders.services.bulk import BulkOutcome, Candidate, candidate_check, candidates_admit

logger = logging.getLogger(__name__)


class BatchFailed(Exception):
    """The batch this request was in could not be written; nothing of it was committed."""


@dataclass
class Ticket:
    """A request's place in a batch, and how it hears the outcome."""

    candidate: Candidate
    joined: float = field(default_factory=time.monotonic)
    outcome: BulkOutcome | None = None
    error: BaseException | None = None
    _event: threading.Event = field(default_factory=threading.Event)
    _callback: Callable[[Ticket], None] | None = None

    def settle(self) -> None:
        self._event.set()
        if self._callback is not None:
            self._callback(self)

    def wait(self) -> BulkOutcome:
        """Block this thread until the batch is written (never abandons a batch in flight:
        its row may commit, and an order the client was not told about is worse)."""
        self._event.wait()
        return self.result()

    def result(self) -> BulkOutcome:
        if self.error is not None:
            raise BatchFailed(str(self.error)) from self.error
        assert self.outcome is not None
        return self.outcome


@dataclass
class FlushStats:
    """The flusher's recent pace, for admission control: how long a request now would wait."""

    batches: int = 0
    rows: int = 0
    recent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=32))
    # The flusher thread adds while request threads and the event loop read: sums kept
    # under a lock (iterating the deque while it is appended to raised, a 500 under load).
    _recent_rows: int = 0
    _recent_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batches += 1
            self.rows += size
            if len(self.recent) == self.recent.maxlen:
                old_size, old_seconds = self.recent[0]
                self._recent_rows -= old_size
                self._recent_seconds -= old_seconds
            self.recent.append((size, seconds))
            self._recent_rows += size
            self._recent_seconds += seconds

    def rows_per_second(self) -> float | None:
        with self._lock:
            rows, seconds = self._recent_rows, self._recent_seconds
        return rows / seconds if rows and seconds > 1e-9 else None


class GroupCommit:
    """The process's batcher: submit() from any thread, one flusher thread writes."""

    def __init__(self, *, max_batch: int) -> None:
        self.max_batch = max_batch
        self.stats = FlushStats()
        self._lock = threading.Condition()
        self._pending: deque[Ticket] = deque()
        self._in_flight = 0
        self._pid: int | None = None

    def submit(self, candidate: Candidate, *, callback: Callable[[Ticket], None] | None = None) -> Ticket:
        # The flusher writes for many requests: it works on this one under its log context
        # (request id, launch, partner), taken here in the request's thread or coroutine.
        candidate.log_fields = log_context_saved()
        ticket = Ticket(candidate=candidate, _callback=callback)
        with self._lock:
            self._ensure_flusher()
            self._pending.append(ticket)
            self._lock.notify()
        return ticket

    async def submit_async(self, candidate: Candidate) -> BulkOutcome:
        """submit() for a coroutine: it waits on a future, holding no thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ticket] = loop.create_future()

        def done(ticket: Ticket) -> None:
            loop.call_soon_threadsafe(_resolve, future, ticket)

        self.submit(candidate, callback=done)
        return (await future).result()

    def waiting(self) -> int:
        """Requests pending or in the batch being written."""
        with self._lock:
            return len(self._pending) + self._in_flight

    def expected_wait(self) -> float:
        """Seconds a request joining now would wait for its outcome, at the recent pace."""
        rate = self.stats.rows_per_second()
        if rate is None:
            return 0.0
        return self.waiting() / rate

    def _ensure_flusher(self) -> None:
        # A forked web worker inherits the object but not the thread: start one per process.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._pending.clear()
            self._in_flight = 0
            threading.Thread(target=self._run, name="group-commit", daemon=True).start()

    def _take(self) -> list[Ticket]:
        with self._lock:
            while not self._pending:
                self._lock.wait()
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            started = time.monotonic()
            # Each request's index is its place in this batch: the engine answers by index
            # and sequences the orders in that order, the order they joined.
            for index, ticket in enumerate(batch):
                ticket.candidate.index = index
            try:
                outcomes = candidates_admit([t.candidate for t in batch])
            except Exception as exc:  # the whole statement failed: nobody in it was admitted
                # A line about the whole batch: no one request's id (the flusher has none),
                # the ids of all of them instead. Each request answers its own failure too.
                logger.warning(
                    "group commit of %s orders failed: %r",
                    len(batch),
                    exc,
                    extra={"request_ids": [_request_id(t) for t in batch]},
                )
                connection.close()  # a broken connection is not reused for the next batch
                for ticket in batch:
                    ticket.error = exc
            else:
                self.stats.add(len(batch), time.monotonic() - started)
                BATCH_SIZE.labels(stage="admission").observe(len(batch))
                for ticket in batch:
                    ADMISSION_QUEUE_SECONDS.observe(started - ticket.joined)
                for ticket, outcome in zip(batch, outcomes, strict=True):
                    ticket.outcome = outcome
            finally:
                with self._lock:
                    self._in_flight = 0
            for ticket in batch:
                ticket.settle()
            if not self._pending:
                # Idle: the connection goes back to the pool rather than sit with this thread.
                connection.close()


def _request_id(ticket: Ticket) -> str:
    return (ticket.candidate.log_fields or {}).get("request_id", "")


def _resolve(future: asyncio.Future[Ticket], ticket: Ticket) -> None:
    if not future.done():
        future.set_result(ticket)


def grouped_admission_enabled() -> bool:
    """Group commit on (ADMISSION_GROUP_COMMIT) and a database that can take a batch."""
    return settings.ADMISSION_GROUP_COMMIT and connection.vendor == "postgresql"


_group: GroupCommit | None = None
_group_lock = threading.Lock()


def group_commit() -> GroupCommit:
    """This process's batcher."""
    global _group
    if _group is None:
        with _group_lock:
            if _group is None:
                _group = GroupCommit(max_batch=settings.ADMISSION_BATCH_MAX)
    return _group


@dataclass(frozen=True)
class GroupedAdmission:
    order: OrderSummary
    replayed: bool = False


def _prepare(
    *,
    launch: str,
    customer: str,
    sku: str,
    fulfilment: str,
    channel: str,
    store: str | None,
    postcode: str | None,
    partner_id: int | None,
    idempotency_key: str | None,
    idempotency_scope: str,
    now: datetime.datetime | None,
    cached_only: bool = False,
) -> Candidate | GroupedAdmission:
    """order_admit's rules before the insert, in the caller's thread: a candidate for the
    batch, or (a request that breaks a rule but repeats an earlier key) that earlier order.

    Raises AdmissionRefused. On the hot path the launch, the store and the customer's
    eligibility come from this process's caches; with cached_only, anything that would
    need a query raises NotCached instead.
    """
    request = OrderRequest(
        launch=launch, customer=customer, sku=sku, fulfilment=fulfilment, store=store, postcode=postcode
    )
    checked = candidate_check(
        request, channel=channel, partner_id=partner_id, now=now or timezone.now(), cached_only=cached_only
    )
    if isinstance(checked, AdmissionRefused):
        if cached_only and idempotency_key:
            raise NotCached  # the key must be looked up: a query
        # As order_admit does, a request with a known key is answered with its order
        # whatever the rules say now (a retry after the window closed, say).
        replay = _known_key(idempotency_scope, idempotency_key, request) if idempotency_key else None
        if replay is not None:
            return replay
        raise checked
    try:
        customer_id = eligible_or_refused(
            launch_id=checked.cat.id, customer=customer, postcode=postcode, cached_only=cached_only
        )
    except AdmissionRefused:
        if cached_only and idempotency_key:
            raise NotCached from None  # the key must be looked up: a query
        replay = _known_key(idempotency_scope, idempotency_key, request) if idempotency_key else None
        if replay is not None:
            return replay
        raise
    checked.customer_id = customer_id
    checked.idempotency_scope = idempotency_scope
    checked.idempotency_key = idempotency_key
    return checked


def _known_key(scope: str, key: str | None, request: OrderRequest) -> GroupedAdmission | None:
    order = (
        Order.objects.filter(idempotency_scope=scope, idempotency_key=key)
        .select_related("launch", "customer", "sku", "store")
        .first()
    )
    if order is None:
        return None
    if order.request_fingerprint != request.fingerprint:
        raise AdmissionRefused(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This Idempotency-Key was already used with a different request body.",
            details={"reference": order.reference},
        )
    return GroupedAdmission(order=order_summary(order), replayed=True)


def _answer(outcome: BulkOutcome) -> GroupedAdmission:
    if outcome.refusal is not None:
        raise outcome.refusal
    assert outcome.order is not None
    return GroupedAdmission(order=outcome.order, replayed=outcome.replayed)


def order_admit_grouped(
    *,
    launch: str,
    customer: str,
    sku: str,
    fulfilment: str,
    channel: str,
    store: str | None = None,
    postcode: str | None = None,
    partner_id: int | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    now: datetime.datetime | None = None,
) -> GroupedAdmission:
    """order_admit's contract (the same arguments, rules and refusals), written by group
    commit. Blocks this thread until its batch has committed; raises AdmissionRefused, or
    BatchFailed when its batch could not be written (nothing of it was)."""
    prepared = _prepare(
        launch=launch,
        customer=customer,
        sku=sku,
        fulfilment=fulfilment,
        channel=channel,
        store=store,
        postcode=postcode,
        partner_id=partner_id,
        idempotency_key=idempotency_key,
        idempotency_scope=idempotency_scope,
        now=now,
    )
    if isinstance(prepared, GroupedAdmission):
        return prepared
    if connection.in_atomic_block:
        # The caller's transaction must hold the order (and the flusher's connection could
        # not see its rows): a batch of one, written here, as order_admit would.
        return _answer(candidates_admit([prepared])[0])
    # Waiting must not hold a pooled connection: with every thread of the pool waiting,
    # the flusher could not get one to write their batch.
    connection.close()
    return _answer(group_commit().submit(prepared).wait())


async def order_admit_grouped_async(
    *,
    launch: str,
    customer: str,
    sku: str,
    fulfilment: str,
    channel: str,
    store: str | None = None,
    postcode: str | None = None,
    partner_id: int | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
) -> GroupedAdmission:
    """order_admit_grouped for a coroutine: waiting for the batch holds no thread.

    The rules run in the event loop on this process's caches; when one of them would
    need a query (a customer not seen before, the launch's catalogue after its five
    seconds, a known Idempotency-Key to look up), they run again in a thread.
    """
    arguments: dict[str, Any] = {
        "launch": launch,
        "customer": customer,
        "sku": sku,
        "fulfilment": fulfilment,
        "channel": channel,
        "store": store,
        "postcode": postcode,
        "partner_id": partner_id,
        "idempotency_key": idempotency_key,
        "idempotency_scope": idempotency_scope,
        "now": None,
    }
    try:
        prepared = _prepare(**arguments, cached_only=True)
    except NotCached:
        prepared = await asyncio.to_thread(_prepare_in_thread, arguments)
    if isinstance(prepared, GroupedAdmission):
        return prepared
    return _answer(await group_commit().submit_async(prepared))


def _prepare_in_thread(arguments: dict[str, Any]) -> Candidate | GroupedAdmission:
    try:
        return _prepare(**arguments)
    finally:
        connection.close()  # back to the pool: this thread may not come again for a while
