"""Putting messages in the outbox, and asking a sender to drain it.

Enqueueing is part of the event's own transaction: the rows commit with the event or
not at all. The nudge after commit is only a hint (the beat schedule drains anyway), so
a broker that is away loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from customers.models import Message
from customers.services.outbox.facts import OrderFacts
from customers.services.outbox.keys import order_message_key, order_message_key_sql, stock_notice_key_sql
from customers.services.outbox.sender import outbox_drain

logger = logging.getLogger(__name__)

NUDGE_KEY = "outbox:nudge"
WAKE_KEY = "outbox:wake"
# Sent by name: the task module is an entry point this core must not import.
DRAIN_TASK = "customers.tasks.outbox_drain"


@dataclass(frozen=True)
class OutboxMessage:
    """One outbox row to write. `context` is what its email needs beyond the customer.

    Mail to someone who is not a customer (a partner's contact) has no customer_id and
    names its recipient in to_email.
    """

    kind: str
    dedupe_key: str
    customer_id: int | None
    launch_id: int | None = None
    order_reference: str = ""
    campaign_id: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    to_email: str = ""


_INSERT = """
INSERT INTO customers_message (kind, dedupe_key, customer_id, order_reference, launch_id, campaign_id,
  context, to_email, message_id, status, attempts, last_error, created_at)
SELECT v.kind, v.dedupe_key, v.customer_id, v.order_reference, v.launch_id, v.campaign_id,
  v.context::jsonb, v.to_email, gen_random_uuid(), 'pending', 0, '', now()
FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[], %s::varchar[], %s::bigint[], %s::bigint[], %s::text[],
  %s::varchar[])
  AS v(kind, dedupe_key, customer_id, order_reference, launch_id, campaign_id, context, to_email)
ON CONFLICT (dedupe_key) DO NOTHING
"""


def messages_enqueue(*, messages: Sequence[OutboxMessage]) -> None:
    """Write outbox rows; a row whose dedupe key is already there is skipped (the
    database decides). Call inside the transaction of the event the rows report.

    On PostgreSQL one statement whatever the count, so the allocator can write tens of
    thousands in its transaction cheaply.
    """
    if not messages:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT,
                [
                    [m.kind for m in messages],
                    [m.dedupe_key for m in messages],
                    [m.customer_id for m in messages],
                    [m.order_reference for m in messages],
                    [m.launch_id for m in messages],
                    [m.campaign_id for m in messages],
                    [orjson.dumps(dict(m.context)).decode() for m in messages],
                    [m.to_email for m in messages],
                ],
            )
        return
    Message.objects.bulk_create(
        [
            Message(
                kind=m.kind,
                dedupe_key=m.dedupe_key,
                customer_id=m.customer_id,
                order_reference=m.order_reference,
                launch_id=m.launch_id,
                campaign_id=m.campaign_id,
                context=dict(m.context),
                to_email=m.to_email,
            )
            for m in messages
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )


# What a statement feeding order_events_enqueue returns, one row per event of an order.
ORDER_EVENT_COLUMNS = (
    "sequence", "kind", "reference", "customer_id", "launch_id",
    "sku_id", "store_id", "fulfilment", "collect_by", "position",
)  # fmt: skip

# facts.OrderFacts.context(), built by the database; timestamps as ISO 8601 in UTC, which
# is how Django's connection is set and what datetime.fromisoformat reads back.
_ORDER_EVENTS_INSERT = """
WITH events AS ({source})
INSERT INTO customers_message (kind, dedupe_key, customer_id, order_reference, launch_id, campaign_id,
  context, message_id, status, attempts, last_error, created_at)
SELECT e.kind, {key}, e.customer_id, e.reference, e.launch_id, NULL,
  jsonb_build_object('sku', e.sku_id, 'store', e.store_id, 'fulfilment', e.fulfilment,
                     'collect_by', e.collect_by, 'position', e.position),
  gen_random_uuid(), 'pending', 0, '', now()
FROM events e ORDER BY e.sequence
ON CONFLICT (dedupe_key) DO NOTHING
"""


def order_events_enqueue(*, source: str, params: Mapping[str, Any]) -> None:
    """Run `source` and write one outbox row per order event it returns, as ONE statement.

    `source` is the caller's own data-modifying statement (the allocator's UPDATE of its
    orders) whose RETURNING gives ORDER_EVENT_COLUMNS; it becomes a CTE of this INSERT,
    so the events and their messages commit together at no extra round trip, and the
    rows are what order_message() would write, built by the database. PostgreSQL only.
    """
    key = order_message_key_sql(kind="e.kind", reference="e.reference")
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_EVENTS_INSERT.format(source=source, key=key), params)


# What a statement feeding stock_notices_enqueue returns, one row per customer told.
STOCK_NOTICE_COLUMNS = (
    "notice_id",
    "window_id",
    "customer_id",
    "launch_id",
    "sku_id",
    "store_id",
    "closes_at",
)

_STOCK_NOTICES_INSERT = """
WITH notices AS ({source})
INSERT INTO customers_message (kind, dedupe_key, customer_id, order_reference, launch_id, campaign_id,
  context, message_id, status, attempts, last_error, created_at)
SELECT %(kind)s, {key}, n.customer_id, '', n.launch_id, NULL,
  jsonb_build_object('notice', n.notice_id, 'sku', n.sku_id, 'store', n.store_id, 'closes_at', n.closes_at),
  gen_random_uuid(), 'pending', 0, '', now()
FROM notices n ORDER BY n.notice_id
ON CONFLICT (dedupe_key) DO NOTHING
"""


def stock_notices_enqueue(*, source: str, params: Mapping[str, Any]) -> int:
    """Run `source` (the caller's INSERT of its notices, RETURNING STOCK_NOTICE_COLUMNS)
    and write one stock_notice email per row, as ONE statement. Returns the emails written.

    The notices and their mail commit together, and a hundred thousand cost one round
    trip. PostgreSQL only; the claim link is signed when the email is rendered.
    """
    key = stock_notice_key_sql(window_id="n.window_id", customer_id="n.customer_id")
    with connection.cursor() as cursor:
        cursor.execute(
            _STOCK_NOTICES_INSERT.format(source=source, key=key),
            {**params, "kind": Message.Kind.STOCK_NOTICE},
        )
        return cursor.rowcount


def order_message(*, kind: str, customer_id: int, launch_id: int, order: OrderFacts) -> OutboxMessage:
    """The outbox row of one event in an order's life, keyed by the event."""
    return OutboxMessage(
        kind=kind,
        dedupe_key=order_message_key(kind=kind, reference=order.reference),
        customer_id=customer_id,
        launch_id=launch_id,
        order_reference=order.reference,
        context=order.context(),
    )


def outbox_nudge() -> None:
    """Ask a sender to drain the outbox once the current transaction commits.

    Coalesced: while one drain task is queued and not yet started, further nudges add
    nothing, so a burst of ten thousand orders makes one task, not ten thousand. Losing a
    nudge loses nothing: the beat schedule drains the outbox anyway.
    """
    transaction.on_commit(outbox_nudge_now)


def outbox_nudge_now() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # The embedded default has no worker: drain here, in the web process.
        outbox_drain()
        return
    try:
        if cache.add(NUDGE_KEY, 1, timeout=settings.OUTBOX_NUDGE_TTL_SECONDS):
            current_app.send_task(DRAIN_TASK)
    except Exception:
        # Redis (the cache or the broker) being away must not fail the request that wrote
        # the rows: they are committed, and the beat schedule drains them when it returns.
        with contextlib.suppress(Exception):
            cache.delete(NUDGE_KEY)
        logger.warning("could not enqueue the outbox drain", exc_info=True)
