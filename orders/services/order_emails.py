"""The customer's email about an event of an order: what it says, and its outbox row.

Every service that tells a customer about their order (allocated, received with a place,
cancelled by staff, not collected in time, claimed from a stock notice, a campaign's
apology) builds the email's facts here, so an order's fields map to what the email says
in one place. The allocator's batch writes the same facts in SQL (allocation's
_ORDERS_UPDATE, whose RETURNING feeds customers' order_events_enqueue); a test holds it
to order_facts.
"""

from __future__ import annotations

import datetime
from typing import Protocol

from customers.models import Message
from customers.services.outbox import OrderFacts, OutboxMessage, messages_enqueue, order_message, outbox_nudge
from orders.models import Order

# The kinds whose email tells the collection deadline: the unit is held in the store
# until then (or was, and nobody came). A cancelled order's deadline means nothing now.
TELLS_COLLECT_BY = frozenset({Message.Kind.ALLOCATED, Message.Kind.COLLECTION_EXPIRED})

# What order_facts reads of an order: a selector may pass values_list(*these, named=True) rows.
ORDER_FACT_FIELDS = ("reference", "sku_id", "fulfilment", "store_id", "collect_by")


class OrderFields(Protocol):
    """An order, or a row of its ORDER_FACT_FIELDS."""

    @property
    def reference(self) -> str: ...
    @property
    def sku_id(self) -> int: ...
    @property
    def fulfilment(self) -> str: ...
    @property
    def store_id(self) -> int | None: ...
    @property
    def collect_by(self) -> datetime.datetime | None: ...


def order_facts(*, order: OrderFields, kind: str, position: int | None = None) -> OrderFacts:
    """What an email of this kind says about the order, as it stands now; `position` is
    its place among the orders waiting in its pool, for an email that tells it."""
    return OrderFacts(
        reference=order.reference,
        sku_id=order.sku_id,
        fulfilment=order.fulfilment,
        store_id=order.store_id,
        collect_by=order.collect_by if kind in TELLS_COLLECT_BY else None,
        position=position,
    )


def order_email(*, order: Order, kind: str, position: int | None = None) -> OutboxMessage:
    """The outbox row of the customer's email about this event of the order."""
    return order_message(
        kind=kind,
        customer_id=order.customer_id,
        launch_id=order.launch_id,
        order=order_facts(order=order, kind=kind, position=position),
    )


def order_email_enqueue(*, order: Order, kind: str) -> None:
    """Tell the customer about this event of their order: the outbox row is written in the
    caller's transaction (keyed by the event, so asking twice tells once) and a sender is
    nudged when it commits."""
    messages_enqueue(messages=[order_email(order=order, kind=kind)])
    outbox_nudge()
