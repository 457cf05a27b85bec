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
3. POST them one by one over one keep-alive connection (transport.py), writing each attempt and the
   delivery's new state in one statement the moment the answer is in. A sender killed
   mid-batch therefore repeats, after the lease, only the delivery it was waiting on
   (with the same webhook-id); the rest of its batch was never sent or is already marked.

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
from django.utils import timezone

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
    due = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).values_list("endpoint_id", flat=True)
    stale = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING, claimed_at__lt=cutoff
    ).values_list("endpoint_id", flat=True)
    enabled = WebhookEndpoint.objects.filter(is_enabled=True)
    return list(enabled.filter(pk__in=due).values_list("pk", flat=True)) + list(
        enabled.filter(pk__in=stale).exclude(pk__in=due).values_list("pk", flat=True)
    )


@dataclass
class Claimed:
    id: int
    attempts: int
    public_id: Any
    type: str
    occurred_at: datetime.datetime
    data: Any


def deliveries_claim(*, endpoint_id: int, limit: int) -> tuple[datetime.datetime, list[Claimed]]:
    """Claim up to `limit` of the endpoint's due deliveries; returns the claim's token
    (its claimed_at) and the rows, dead senders' rows first, then by due time."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    mine = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(endpoint_id=endpoint_id)
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


# Writes the attempt and the delivery's new state together, in one statement, only if
# this sender's claim still holds (a sender whose lease ran out finds its row taken). A
# retry due at an endpoint switched off meanwhile fails instead, as its pending ones did.
_RECORD = """
WITH d AS (
  UPDATE stores_webhookdelivery SET attempts = attempts + 1,
    status = CASE WHEN %(status)s = 'pending'
                   AND NOT (SELECT w.is_enabled FROM stores_webhookendpoint w WHERE w.id = endpoint_id)
                  THEN 'failed' ELSE %(status)s END,
    next_attempt_at = COALESCE(%(next)s, next_attempt_at), claimed_at = NULL,
    last_status_code = %(code)s, last_error = %(error)s,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(now)s ELSE delivered_at END
  WHERE id = %(id)s AND status = 'sending' AND claimed_at = %(token)s
  RETURNING id
)
INSERT INTO stores_webhookattempt (delivery_id, attempted_at, request_headers, status_code, response_body,
  duration_ms, error)
VALUES (%(id)s, %(now)s, %(headers)s::jsonb, %(code)s, %(body)s, %(duration)s, %(error)s)
"""


def attempt_record(
    *,
    claimed: Claimed,
    token: datetime.datetime,
    outcome: Outcome,
    status: str,
    next_at: datetime.datetime | None,
) -> None:
    now = timezone.now()
    error = outcome.error or (f"HTTP {outcome.status_code}" if not outcome.succeeded else "")
    body = outcome.body.replace("\x00", "")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORD,
                {
                    "status": status,
                    "next": next_at,
                    "code": outcome.status_code,
                    "error": error[:500],
                    "now": now,
                    "id": claimed.id,
                    "token": token,
                    "headers": orjson.dumps(outcome.headers).decode(),
                    "body": body,
                    "duration": outcome.duration_ms,
                },
            )
        return
    with transaction.atomic():
        mine = WebhookDelivery.objects.filter(
            pk=claimed.id, status=WebhookDelivery.Status.SENDING, claimed_at=token
        )
        if status == WebhookDelivery.Status.PENDING and mine.filter(endpoint__is_enabled=False).exists():
            status = WebhookDelivery.Status.FAILED
        mine.update(
            status=status,
            attempts=claimed.attempts + 1,
            next_attempt_at=next_at or now,
            claimed_at=None,
            last_status_code=outcome.status_code,
            last_error=error[:500],
            delivered_at=now if status == WebhookDelivery.Status.DELIVERED else None,
        )
        WebhookAttempt.objects.create(
            delivery_id=claimed.id,
            attempted_at=now,
            request_headers=outcome.headers,
            status_code=outcome.status_code,
            response_body=body,
            duration_ms=outcome.duration_ms,
            error=error[:500],
        )


# --- A batch of one endpoint ---------------------------------------------------------


class BatchSend:
    """One endpoint's claimed batch, sent in order over the sender's connections, in named steps."""

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

    def run(self) -> DrainResult:
        for index, claimed in enumerate(self.rows):
            stop = self.must_stop()
            if stop is not None:
                self.result.handed_back += hand_back(
                    ids=[c.id for c in self.rows[index:]], token=self.token, delay=stop
                )
                break
            outcome = self.send(claimed)
            delay = self.settle(claimed, outcome)
            if delay is not None:  # the endpoint is down or asks us to wait: the rest waits too
                self.result.handed_back += hand_back(
                    ids=[c.id for c in self.rows[index + 1 :]], token=self.token, delay=delay
                )
                break
        return self.result

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
        """Record the attempt and its consequences; a delay when the batch must stop."""
        if outcome.succeeded:
            attempt_record(
                claimed=claimed,
                token=self.token,
                outcome=outcome,
                status=WebhookDelivery.Status.DELIVERED,
                next_at=None,
            )
            self.result.delivered += 1
            if self.endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=self.endpoint.pk).update(failing_since=None)
                self.endpoint.failing_since = None
            return None
        if outcome.status_code == 410:
            attempt_record(
                claimed=claimed,
                token=self.token,
                outcome=outcome,
                status=WebhookDelivery.Status.FAILED,
                next_at=None,
            )
            self.result.failed += 1
            if webhook_endpoint_disable(
                endpoint_id=self.endpoint.pk, reason=WebhookEndpoint.DisabledReason.GONE
            ):
                self.result.disabled.append(self.endpoint.pk)
            return datetime.timedelta(0)
        now = timezone.now()
        delay = retry_delay(attempts=claimed.attempts + 1)
        if delay is not None and outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        status = WebhookDelivery.Status.PENDING if delay is not None else WebhookDelivery.Status.FAILED
        attempt_record(
            claimed=claimed,
            token=self.token,
            outcome=outcome,
            status=status,
            next_at=now + delay if delay else None,
        )
        self.result.retried += delay is not None
        self.result.failed += delay is None
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
