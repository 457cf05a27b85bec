"""Delivering webhook events: senders claim due deliveries and POST them, signed.

A drain (one Celery task on the `webhooks` queue, stores/tasks.py) runs
WEBHOOK_SENDER_THREADS senders for up to WEBHOOK_DRAIN_SECONDS. Each sender loops:

1. pick an endpoint with due deliveries and take one of its WEBHOOK_ENDPOINT_CONCURRENCY
   slots (a session-level PostgreSQL advisory lock, so the cap holds across every
   process, and a killed process's slots are freed with its connection). An endpoint
   that never answers holds at most its slots, never every sender;
2. claim up to WEBHOOK_BATCH_SIZE of its due deliveries (FOR UPDATE SKIP LOCKED): pending
   rows due now, and rows whose sender died (`sending` past WEBHOOK_LEASE_SECONDS) become
   `sending` under this sender's claim;
3. POST them one by one over one keep-alive connection (transport.py), and write the
   attempts with the deliveries' new states, several in one statement: a success is
   written with the ones before it once WEBHOOK_RECORD_EVERY are waiting or the oldest
   has waited WEBHOOK_RECORD_WAIT_SECONDS (checked before each request), and always at
   the end of the batch and before anything is handed back; any other outcome is written
   at once, with the successes waiting before it, because what follows (failure streak,
   410, hand-back) depends on it. One statement a delivery cost a WAL flush each, more
   than the POST itself.

   A sender killed mid-batch therefore repeats, after the lease and with the same
   webhook-id, only its deliveries in flight, which now means: the request it was
   waiting on, and the successes answered but not yet written - at most
   WEBHOOK_RECORD_EVERY - 1 of them, all answered within WEBHOOK_RECORD_WAIT_SECONDS
   before that request was sent. The rest of its batch was never sent or is already
   marked. (WEBHOOK_RECORD_EVERY = 1 writes each attempt the moment its answer is in.)

Retries follow WEBHOOK_RETRY_SCHEDULE (Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 14 h, 20 h, 24 h) with jitter, kept in next_attempt_at (never a Celery countdown:
one past the broker's visibility timeout would run twice). Retry-After is honoured,
redirects are not followed, 410 switches the endpoint off, and an endpoint failing for
WEBHOOK_DISABLE_AFTER_SECONDS (5 days) is switched off for the partner's contact to be
told (customers.services.partner_notices, which the task runs after each drain).
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from config.metrics import WEBHOOKS
from stores.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, webhook_id
from stores.services.webhooks.endpoints import signing_keys, webhook_endpoint_disable
from stores.services.webhooks.signing import signature
from stores.services.webhooks.transport import Connections

logger = logging.getLogger(__name__)

# Sent by name: the task module is an entry point this core must not import.
DRAIN_TASK = "stores.tasks.webhooks_deliver"
NUDGE_KEY = "webhooks:nudge"
WAKE_KEY = "webhooks:wake"
# Advisory lock class of the endpoint slots (orders.services.locks uses 7301 and 7302).
SLOT_LOCK = 7310
MAX_SLOTS = 64
BODY_KEPT = 2048
# Read past the kept part only this far, so a big answer cannot hold a sender.
BODY_DRAINED = 64 * 1024
DISABLED_CHECK_SECONDS = 1.0


@dataclass
class DrainResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    handed_back: int = 0
    disabled: list[int] = field(default_factory=list)

    def add(self, other: DrainResult) -> None:
        for name in ("claimed", "delivered", "retried", "failed", "handed_back"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.disabled += other.disabled


def retry_delay(*, attempts: int) -> datetime.timedelta | None:
    """When to try again after `attempts` failed attempts, jittered; None: give up."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    jitter = settings.WEBHOOK_RETRY_JITTER
    return datetime.timedelta(seconds=schedule[attempts - 1] * random.uniform(1 - jitter, 1 + jitter))


def retry_after(value: str | None, *, now: datetime.datetime) -> datetime.timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a delay, at most a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return datetime.timedelta(seconds=min(max(seconds, 0.0), 86400.0))


# --- Slots: the per-endpoint concurrency cap ------------------------------------------


def _slot_key(endpoint_id: int, slot: int) -> int:
    return (endpoint_id % (2**31 // MAX_SLOTS)) * MAX_SLOTS + slot


def slot_take(*, endpoint_id: int) -> int | None:
    """One of the endpoint's WEBHOOK_ENDPOINT_CONCURRENCY slots, held on this thread's
    connection until slot_release; None when all are taken. (SQLite: no cap, one writer.)"""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        for slot in range(min(settings.WEBHOOK_ENDPOINT_CONCURRENCY, MAX_SLOTS)):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SLOT_LOCK, _slot_key(endpoint_id, slot)])
            if cursor.fetchone()[0]:
                return slot
    return None


def slot_release(*, endpoint_id: int, slot: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SLOT_LOCK, _slot_key(endpoint_id, slot)])


# --- Claiming -------------------------------------------------------------------------


def endpoints_due() -> list[int]:
    """Enabled endpoints with a delivery due now (or a dead sender's, past its lease)."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    mine = WebhookDelivery.objects.filter(endpoint_id=OuterRef("pk"))
    due = mine.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
    stale = mine.filter(status=WebhookDelivery.Status.SENDING, claimed_at__lt=cutoff)
    # One `(SELECT id ... LIMIT 1)` per endpoint: an index probe that stops at the first
    # row. As `pk IN (...)` (or EXISTS), PostgreSQL may hash every due row instead, 7 ms
    # at 20,000 due, before a burst of new rows has been analysed.
    rows = (
        WebhookEndpoint.objects.filter(is_enabled=True)
        .annotate(due=Subquery(due.values("id")[:1]), stale=Subquery(stale.values("id")[:1]))
        .values_list("pk", "due", "stale")
    )
    return [pk for pk, d, _ in rows if d is not None] + [
        pk for pk, d, st in rows if d is None and st is not None
    ]


@dataclass
class Claimed:
    id: int
    attempts: int
    public_id: Any
    type: str
    occurred_at: datetime.datetime
    data: Any


# Claims in one statement, planned the same whatever the statistics say (the ORM's
# three, before a burst of new rows was analysed, took 15 ms by hashing every event):
# lock up to `limit` rows of dead senders and of due ones (SKIP LOCKED), keep the first
# `limit` (dead senders' first, then by due time), and mark them ours, returning their
# events. Rows locked but not kept are free again at the commit, a moment later.
_CLAIM = """
WITH dead AS (
  SELECT id, 0 AS rank, claimed_at AS since FROM stores_webhookdelivery
  WHERE endpoint_id = %(endpoint)s AND status = 'sending' AND claimed_at < %(cutoff)s
  ORDER BY claimed_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), due AS (
  SELECT id, 1 AS rank, next_attempt_at AS since FROM stores_webhookdelivery
  WHERE endpoint_id = %(endpoint)s AND status = 'pending' AND next_attempt_at <= %(now)s
  ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), chosen AS (
  (SELECT * FROM dead UNION ALL SELECT * FROM due) ORDER BY rank, since, id LIMIT %(limit)s
)
UPDATE stores_webhookdelivery d SET status = 'sending', claimed_at = %(now)s
FROM chosen, stores_webhookevent e WHERE d.id = chosen.id AND e.id = d.event_id
RETURNING chosen.rank, chosen.since, d.id, d.attempts, e.public_id, e.type, e.occurred_at, e.data::text
"""


def deliveries_claim(*, endpoint_id: int, limit: int) -> tuple[datetime.datetime, list[Claimed]]:
    """Claim up to `limit` of the endpoint's due deliveries; returns the claim's token
    (its claimed_at) and the rows, dead senders' rows first, then by due time."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM, {"endpoint": endpoint_id, "cutoff": cutoff, "now": now, "limit": limit})
            found = sorted(cursor.fetchall(), key=lambda r: (r[0], r[1], r[2]))
        return now, [
            Claimed(
                id=r[2], attempts=r[3], public_id=r[4], type=r[5], occurred_at=r[6], data=orjson.loads(r[7])
            )
            for r in found
        ]
    mine = WebhookDelivery.objects.filter(endpoint_id=endpoint_id)
    with transaction.atomic():
        ids = list(
            mine.filter(status=WebhookDelivery.Status.SENDING, claimed_at__lt=cutoff)
            .order_by("claimed_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if len(ids) < limit:
            ids += list(
                mine.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")
                .values_list("id", flat=True)[: limit - len(ids)]
            )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(
                status=WebhookDelivery.Status.SENDING, claimed_at=now
            )
    if not ids:
        return now, []
    rows = {
        r[0]: Claimed(*r)
        for r in WebhookDelivery.objects.filter(pk__in=ids).values_list(
            "id", "attempts", "event__public_id", "event__type", "event__occurred_at", "event__data"
        )
    }
    return now, [rows[pk] for pk in ids]


def hand_back(*, ids: list[int], token: datetime.datetime, delay: datetime.timedelta | None = None) -> int:
    """Claimed deliveries never attempted go back to pending (no attempt counted); those
    of an endpoint switched off meanwhile fail, as its pending ones did."""
    if not ids:
        return 0
    mine = WebhookDelivery.objects.filter(pk__in=ids, status=WebhookDelivery.Status.SENDING, claimed_at=token)
    mine.filter(endpoint__is_enabled=False).update(
        status=WebhookDelivery.Status.FAILED, claimed_at=None, last_error="Endpoint switched off."
    )
    return mine.update(
        status=WebhookDelivery.Status.PENDING,
        claimed_at=None,
        next_attempt_at=timezone.now() + (delay or datetime.timedelta(0)),
    )


# --- One attempt ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one POST came to."""

    headers: dict[str, str]
    status_code: int | None = None
    body: str = ""
    error: str = ""
    duration_ms: int = 0
    retry_after: datetime.timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return (
            self.status_code is not None
            and 200 <= self.status_code < 300
            and self.duration_ms <= settings.WEBHOOK_TIMEOUT_SECONDS * 1000
        )

    @property
    def connection_failed(self) -> bool:
        """No answer at all (refused, timed out, address not allowed): the endpoint is down."""
        return self.status_code is None


def request_body(claimed: Claimed) -> bytes:
    """The body of every attempt of an event: {"type", "timestamp", "data"}."""
    return orjson.dumps({"type": claimed.type, "timestamp": claimed.occurred_at, "data": claimed.data})


def post(connections: Connections, *, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    outcome = Outcome(headers=headers)
    started = time.monotonic()
    try:
        reply = connections.post(
            url=url,
            body=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            keep=BODY_KEPT,
            drain=BODY_DRAINED,
        )
        outcome.status_code = reply.status
        outcome.body = reply.body.decode("utf-8", "replace")
        if reply.retry_after is not None:
            outcome.retry_after = retry_after(reply.retry_after, now=timezone.now())
    except TimeoutError:
        outcome.error = f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s."
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # Refused, reset, TLS, address refused by the guard, a malformed answer or URL.
        outcome.error = f"{type(exc).__name__}: {exc}"[:500]
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    if outcome.status_code is not None and not outcome.succeeded and 200 <= outcome.status_code < 300:
        outcome.error = (
            f"Answered after {outcome.duration_ms} ms, past the {settings.WEBHOOK_TIMEOUT_SECONDS:g} s limit."
        )
    elif outcome.status_code is not None and 300 <= outcome.status_code < 400:
        outcome.error = "Redirects are not followed: give the endpoint's final URL."
    return outcome


@dataclass
class Record:
    """One attempt to write: what came of it, and the state it leaves the delivery in."""

    claimed: Claimed
    outcome: Outcome
    status: str
    next_at: datetime.datetime | None
    at: datetime.datetime  # when the answer (or the failure) came


# Writes attempts and their deliveries' new states together, in one statement (one
# transaction, one WAL flush for them all). A delivery changes only if this sender's claim
# still holds (a sender whose lease ran out finds its row taken), but its attempt is logged
# either way: it was sent. A retry due at an endpoint switched off meanwhile fails instead,
# as its pending ones did. The rows come as one JSON array, logged in the order sent (n).
_RECORD = """
WITH r AS (
  SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(n int, id bigint, status text,
    next_at timestamptz, code int, error text, at timestamptz, headers jsonb, body text, duration int)
), d AS (
  UPDATE stores_webhookdelivery d SET attempts = d.attempts + 1,
    status = CASE WHEN r.status = 'pending' AND NOT w.is_enabled THEN 'failed' ELSE r.status END,
    next_attempt_at = COALESCE(r.next_at, d.next_attempt_at), claimed_at = NULL,
    last_status_code = r.code, last_error = r.error,
    delivered_at = CASE WHEN r.status = 'delivered' THEN r.at ELSE d.delivered_at END
  FROM r, stores_webhookendpoint w
  WHERE d.id = r.id AND w.id = d.endpoint_id AND d.status = 'sending' AND d.claimed_at = %(token)s
)
INSERT INTO stores_webhookattempt (delivery_id, attempted_at, request_headers, status_code, response_body,
  duration_ms, error)
SELECT id, at, headers, code, body, duration, error FROM r ORDER BY n
"""


def _error(outcome: Outcome) -> str:
    error = outcome.error or (f"HTTP {outcome.status_code}" if not outcome.succeeded else "")
    # Lone surrogates cannot be stored; an exception's text is the only source of them.
    return error[:500].encode("utf-8", "replace").decode()


def attempts_record(*, records: list[Record], token: datetime.datetime) -> None:
    """Write the attempts of one claim (`token`) and their deliveries' new states."""
    if not records:
        return
    if connection.vendor == "postgresql":
        rows = [
            {
                "n": n,
                "id": r.claimed.id,
                "status": r.status,
                "next_at": r.next_at,
                "code": r.outcome.status_code,
                "error": _error(r.outcome),
                "at": r.at,
                "headers": r.outcome.headers,
                # PostgreSQL text holds no NUL.
                "body": r.outcome.body.replace("\x00", ""),
                "duration": r.outcome.duration_ms,
            }
            for n, r in enumerate(records)
        ]
        with connection.cursor() as cursor:
            cursor.execute(_RECORD, {"rows": orjson.dumps(rows).decode(), "token": token})
        return
    with transaction.atomic():
        for r in records:
            status = r.status
            mine = WebhookDelivery.objects.filter(
                pk=r.claimed.id, status=WebhookDelivery.Status.SENDING, claimed_at=token
            )
            if status == WebhookDelivery.Status.PENDING and mine.filter(endpoint__is_enabled=False).exists():
                status = WebhookDelivery.Status.FAILED
            mine.update(
                status=status,
                attempts=r.claimed.attempts + 1,
                next_attempt_at=r.next_at or r.at,
                claimed_at=None,
                last_status_code=r.outcome.status_code,
                last_error=_error(r.outcome),
                delivered_at=r.at if status == WebhookDelivery.Status.DELIVERED else None,
            )
            WebhookAttempt.objects.create(
                delivery_id=r.claimed.id,
                attempted_at=r.at,
                request_headers=r.outcome.headers,
                status_code=r.outcome.status_code,
                response_body=r.outcome.body.replace("\x00", ""),
                duration_ms=r.outcome.duration_ms,
                error=_error(r.outcome),
            )


# --- A batch of one endpoint ---------------------------------------------------------


class BatchSend:
    """One endpoint's claimed batch, sent in order over the sender's connections, in
    named steps. Successes wait in `unrecorded` to be written several at a time (see the
    module's docstring for when, and what a SIGKILL then repeats)."""

    def __init__(
        self, *, endpoint_id: int, token: datetime.datetime, rows: list[Claimed], connections: Connections
    ):
        self.endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        self.token = token
        self.rows = rows
        self.connections = connections
        self.result = DrainResult(claimed=len(rows))
        self.started = time.monotonic()
        # Stop well inside the lease, leaving room for one last request's timeout.
        self.budget = max(settings.WEBHOOK_LEASE_SECONDS / 2 - settings.WEBHOOK_TIMEOUT_SECONDS, 1.0)
        self.checked_at = self.started
        self.unrecorded: list[Record] = []
        self.unrecorded_since = 0.0
        self.record_every = max(settings.WEBHOOK_RECORD_EVERY, 1)
        self.record_wait = settings.WEBHOOK_RECORD_WAIT_SECONDS

    def run(self) -> DrainResult:
        try:
            for index, claimed in enumerate(self.rows):
                if self.unrecorded and (
                    len(self.unrecorded) >= self.record_every
                    or time.monotonic() - self.unrecorded_since >= self.record_wait
                ):
                    self.record()
                stop = self.must_stop()
                if stop is not None:
                    self.hand_back_from(index, delay=stop)
                    break
                outcome = self.send(claimed)
                delay = self.settle(claimed, outcome)
                if delay is not None:  # the endpoint is down or asks us to wait: the rest waits too
                    self.hand_back_from(index + 1, delay=delay)
                    break
        finally:
            self.record()
        return self.result

    def record(self) -> None:
        """Write the attempts waiting (before anything that depends on them)."""
        if self.unrecorded:
            attempts_record(records=self.unrecorded, token=self.token)
            self.unrecorded = []

    def note(self, record: Record) -> None:
        if not self.unrecorded:
            self.unrecorded_since = time.monotonic()
        self.unrecorded.append(record)

    def hand_back_from(self, index: int, *, delay: datetime.timedelta) -> None:
        self.record()
        self.result.handed_back += hand_back(
            ids=[c.id for c in self.rows[index:]], token=self.token, delay=delay
        )

    def must_stop(self) -> datetime.timedelta | None:
        """A delay to hand the rest back with, when this batch must stop now."""
        now = time.monotonic()
        if now - self.started > self.budget:
            return datetime.timedelta(0)
        if now - self.checked_at > DISABLED_CHECK_SECONDS:
            self.checked_at = now
            if not WebhookEndpoint.objects.filter(pk=self.endpoint.pk, is_enabled=True).exists():
                return datetime.timedelta(0)
        return None

    def send(self, claimed: Claimed) -> Outcome:
        now = timezone.now()
        body = request_body(claimed)
        msg_id = webhook_id(claimed.public_id)
        timestamp = int(now.timestamp())
        keys = signing_keys(
            secret=self.endpoint.secret,
            previous_secret=self.endpoint.previous_secret,
            previous_expires_at=self.endpoint.previous_secret_expires_at,
            now=now,
        )
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(keys=keys, msg_id=msg_id, timestamp=timestamp, body=body),
        }
        return post(self.connections, url=self.endpoint.url, body=body, headers=headers)

    def settle(self, claimed: Claimed, outcome: Outcome) -> datetime.timedelta | None:
        """Note the attempt and act on it; a delay when the batch must stop. Only a
        success may wait to be written: what the others lead to reads their state."""
        now = timezone.now()
        if outcome.succeeded:
            self.note(Record(claimed, outcome, WebhookDelivery.Status.DELIVERED, None, now))
            self.result.delivered += 1
            WEBHOOKS.labels(outcome="sent").inc()
            if self.endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=self.endpoint.pk).update(failing_since=None)
                self.endpoint.failing_since = None
            return None
        if outcome.status_code == 410:
            self.note(Record(claimed, outcome, WebhookDelivery.Status.FAILED, None, now))
            self.record()
            self.result.failed += 1
            WEBHOOKS.labels(outcome="failed").inc()
            if webhook_endpoint_disable(
                endpoint_id=self.endpoint.pk, reason=WebhookEndpoint.DisabledReason.GONE
            ):
                self.result.disabled.append(self.endpoint.pk)
            return datetime.timedelta(0)
        delay = retry_delay(attempts=claimed.attempts + 1)
        if delay is not None and outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        status = WebhookDelivery.Status.PENDING if delay is not None else WebhookDelivery.Status.FAILED
        self.note(Record(claimed, outcome, status, now + delay if delay else None, now))
        self.record()
        self.result.retried += delay is not None
        self.result.failed += delay is None
        WEBHOOKS.labels(outcome="retried" if delay is not None else "failed").inc()
        if self.failing(now):
            return datetime.timedelta(0)  # switched off: the rest of the batch fails with it
        if outcome.connection_failed:
            return datetime.timedelta(seconds=settings.WEBHOOK_DOWN_PAUSE_SECONDS)
        if outcome.retry_after is not None:
            return outcome.retry_after
        return None

    def failing(self, now: datetime.datetime) -> bool:
        """Start the endpoint's failure streak, or switch it off (True) when it is too old."""
        if self.endpoint.failing_since is None:
            WebhookEndpoint.objects.filter(pk=self.endpoint.pk, failing_since__isnull=True).update(
                failing_since=now
            )
            self.endpoint.refresh_from_db(fields=["failing_since"])
        since = self.endpoint.failing_since
        too_long = (
            since is not None and (now - since).total_seconds() >= settings.WEBHOOK_DISABLE_AFTER_SECONDS
        )
        if too_long and webhook_endpoint_disable(
            endpoint_id=self.endpoint.pk, reason=WebhookEndpoint.DisabledReason.FAILING
        ):
            self.result.disabled.append(self.endpoint.pk)
        return too_long


# --- Senders and the drain -------------------------------------------------------------


def _sender(deadline: float, result: DrainResult, lock: threading.Lock) -> None:
    """One sender: endpoint after endpoint, batch after batch, until nothing is due."""
    connections = Connections()
    mine = DrainResult()
    try:
        while time.monotonic() < deadline:
            endpoints = endpoints_due()
            random.shuffle(endpoints)
            taken = None
            for endpoint_id in endpoints:
                slot = slot_take(endpoint_id=endpoint_id)
                if slot is not None:
                    taken = (endpoint_id, slot)
                    break
            if taken is None:
                return
            endpoint_id, slot = taken
            try:
                token, rows = deliveries_claim(endpoint_id=endpoint_id, limit=settings.WEBHOOK_BATCH_SIZE)
                if rows:
                    batch = BatchSend(
                        endpoint_id=endpoint_id, token=token, rows=rows, connections=connections
                    )
                    mine.add(batch.run())
            finally:
                slot_release(endpoint_id=endpoint_id, slot=slot)
    finally:
        connections.close()
        with lock:
            result.add(mine)


def webhooks_drain(*, time_budget: float | None = None, senders: int | None = None) -> DrainResult:
    """Run senders until nothing is due or the time budget is spent."""
    time_budget = settings.WEBHOOK_DRAIN_SECONDS if time_budget is None else time_budget
    senders = settings.WEBHOOK_SENDER_THREADS if senders is None else senders
    deadline = time.monotonic() + time_budget
    result = DrainResult()
    lock = threading.Lock()
    if senders <= 1 or connection.vendor != "postgresql":
        _sender(deadline, result, lock)
        return result

    def run() -> None:
        try:
            _sender(deadline, result, lock)
        except Exception:
            logger.exception("a webhook sender stopped")
        finally:
            connection.close()  # this thread's own connection, and any slot it still held

    threads = [threading.Thread(target=run, name=f"webhook-sender-{i}", daemon=True) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def webhooks_due() -> bool:
    return bool(endpoints_due())


def webhooks_next_due() -> datetime.datetime | None:
    """When the next delivery not due now becomes due: a retry, or a sender's lease ending."""
    lease = datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    retry = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, endpoint__is_enabled=True)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    claimed = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SENDING)
        .order_by("claimed_at")
        .values_list("claimed_at", flat=True)
        .first()
    )
    moments = [m for m in (retry, claimed + lease if claimed else None) if m is not None]
    return min(moments) if moments else None


def webhooks_nudge() -> None:
    """Ask for a drain once the current transaction commits (coalesced; beat's safety net
    drains anyway, so a lost nudge only delays)."""
    transaction.on_commit(webhooks_nudge_now)


def webhooks_nudge_now() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # The embedded default has no worker: deliver here, briefly, with one sender.
        webhooks_drain(time_budget=settings.WEBHOOK_EAGER_DRAIN_SECONDS, senders=1)
        return
    try:
        if cache.add(NUDGE_KEY, 1, timeout=settings.WEBHOOK_NUDGE_TTL_SECONDS):
            current_app.send_task(DRAIN_TASK)
    except Exception:
        logger.warning("could not enqueue the webhook drain", exc_info=True)
