"""An order as partners and customers see it (API.md's Order), one shape for every reader."""

import datetime
from dataclasses import dataclass

from django.db.models import QuerySet

from customers.models import Customer
from orders.models import Order
from orders.selectors.positions import order_queue_position

WAITING: tuple[str, ...] = (Order.Status.QUEUED, Order.Status.WAITLISTED)


@dataclass(frozen=True)
class OrderSummary:
    """API.md's Order: the caller's codes, never model instances."""

    reference: str
    launch: str
    customer: str
    sku: str
    fulfilment: str
    store: str | None
    channel: str
    status: str
    queue_position: int | None
    created_at: datetime.datetime


def order_summary(order: Order, *, queue_position: int | None = None) -> OrderSummary:
    """The order as it stands. Needs launch, customer, sku and store loaded; reads the
    queue position of a waiting order unless the caller already has it."""
    if queue_position is None and order.status in WAITING:
        queue_position = order_queue_position(order=order).position
    return OrderSummary(
        reference=order.reference,
        launch=order.launch.slug,
        customer=order.customer.account_number,
        sku=order.sku.code,
        fulfilment=order.fulfilment,
        store=order.store.code if order.store is not None else None,
        channel=order.channel,
        status=order.status,
        queue_position=queue_position if order.status in WAITING else None,
        created_at=order.created_at,
    )


def order_document(order: OrderSummary) -> dict:
    """API.md's Order as a JSON object: the one place an order is written out (the API's
    answers and webhook payloads). ORDER_DOCUMENT_SQL writes the same in the database."""
    return {
        "reference": order.reference,
        "launch": order.launch,
        "customer": order.customer,
        "sku": order.sku,
        "fulfilment": order.fulfilment,
        "store": order.store,
        "channel": order.channel,
        "status": order.status,
        "queue_position": order.queue_position,
        "created_at": order.created_at,
    }


# order_document built by PostgreSQL, for statements that write many events at once
# (the allocator's webhooks). `o` is the order row; `{position}` the SQL of its queue
# position (NULL unless it waits). test_webhook_events holds the two equal.
ORDER_DOCUMENT_JOINS = """
  JOIN inventory_launch l ON l.id = o.launch_id
  JOIN customers_customer c ON c.id = o.customer_id
  JOIN inventory_sku s ON s.id = o.sku_id
  LEFT JOIN stores_store st ON st.id = o.store_id
"""
# created_at as orjson writes a UTC datetime (six digits of microseconds, none when they
# are zero): jsonb's own form drops trailing zeros (".6402"), so the same order's events
# would read differently depending on who wrote them.
_CREATED_AT_SQL = (
    "to_char(o.created_at AT TIME ZONE 'UTC', CASE WHEN mod(extract(microseconds FROM o.created_at)::bigint, "
    '1000000) = 0 THEN \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\' ELSE \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\' END)'
)
ORDER_DOCUMENT_SQL = (
    "jsonb_build_object('reference', o.reference, 'launch', l.slug, 'customer', c.account_number, "
    "'sku', s.code, 'fulfilment', o.fulfilment, 'store', st.code, 'channel', o.channel, "
    f"'status', o.status, 'queue_position', {{position}}, 'created_at', {_CREATED_AT_SQL})"
)


def customer_orders(*, customer: Customer) -> QuerySet[Order]:
    """A customer's orders, newest first (head office's customer page)."""
    return (
        Order.objects.filter(customer=customer).select_related("launch", "sku", "store").order_by("-sequence")
    )
