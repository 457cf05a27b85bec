"""The orders pages' reads: finding orders at launch scale, and one order's story.

Paging is by keyset on the sequence (newest first), never OFFSET, and nothing counts the
table. A page with a filter no index leads with (status, SKU, channel, partner, launch)
walks the primary key down from its cursor and stops at a page of matches or at the
bottom of its window, WINDOW sequences below the cursor, whichever comes first: a
filter that matches one order in a million costs the same bounded scan as one that
matches half, and the page says how far down it looked and offers to look further.
A search (reference or account number) and a store's orders (order_store_recent) are
index lookups, so they are not windowed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Max, Q, QuerySet

from customers.models import Customer, Message
from customers.selectors import order_messages
from orders.models import Order
from orders.selectors.positions import order_queue_position

PAGE_SIZE = 50
# At most this many sequences are looked through for one page of a windowed filter.
WINDOW = 100_000

# What a page of orders shows (orders/order_list.html). Reading only these halves the cost
# of building a page of orders (15 ms to 8 on the bench's machine): an order has 25
# columns, six of them times, and the launch it belongs to is not shown at all.
LISTED_FIELDS = (
    "sequence",
    "reference",
    "created_at",
    "status",
    "fulfilment",
    "channel",
    "customer__account_number",
    "sku__code",
    "store__code",
    "partner__code",
)
_LISTED = ("customer", "sku", "store", "partner")


@dataclass(frozen=True)
class OrderFilters:
    launch_id: int | None = None
    status: str = ""
    sku_id: int | None = None
    store_id: int | None = None
    channel: str = ""
    partner_id: int | None = None
    # A reference or an account number (exact, upper case).
    query: str = ""

    @property
    def indexed(self) -> bool:
        """Whether an index leads with the filter, so no window is needed."""
        return bool(self.query) or self.store_id is not None


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    # The cursor of the next (older) page: look below this sequence. None at the bottom.
    older_than: int | None
    # Set when the window ran out before a page filled: the lowest sequence looked at.
    searched_down_to: int | None = None


def order_search(*, filters: OrderFilters, before: int | None = None) -> OrderPage:
    """One page of orders matching `filters`, newest first, below sequence `before`."""
    orders = _filtered(filters)
    if before is not None:
        orders = orders.filter(sequence__lt=before)
    floor = None
    if not filters.indexed:
        top = before if before is not None else (Order.objects.aggregate(top=Max("sequence"))["top"] or 0) + 1
        floor = top - WINDOW
        if floor > 1:
            orders = orders.filter(sequence__gte=floor)
        else:
            floor = None
    rows = list(orders.select_related(*_LISTED).only(*LISTED_FIELDS).order_by("-sequence")[: PAGE_SIZE + 1])
    if len(rows) > PAGE_SIZE:
        return OrderPage(orders=rows[:PAGE_SIZE], older_than=rows[PAGE_SIZE - 1].sequence)
    if floor is not None:
        return OrderPage(orders=rows, older_than=floor, searched_down_to=floor)
    return OrderPage(orders=rows, older_than=None)


def _filtered(filters: OrderFilters) -> QuerySet[Order]:
    orders = Order.objects.all()
    if filters.query:
        # The customer is read first, by its unique account number, so the orders' condition
        # is two plain equalities PostgreSQL answers with two index lookups (a BitmapOr).
        # Left as a subquery, the planner walked the whole table backwards instead (bench:
        # 120-200 ms at 1,000,000 orders).
        match = Q(reference=filters.query)
        customer_id = (
            Customer.objects.filter(account_number=filters.query).values_list("pk", flat=True).first()
        )
        if customer_id is not None:
            match |= Q(customer_id=customer_id)
        orders = orders.filter(match)
    exact = {
        "launch_id": filters.launch_id,
        "status": filters.status,
        "sku_id": filters.sku_id,
        "store_id": filters.store_id,
        "channel": filters.channel,
        "partner_id": filters.partner_id,
    }
    return orders.filter(**{name: value for name, value in exact.items() if value not in (None, "")})


def order_for_page(*, reference: str, store_id: int | None = None) -> Order | None:
    """The order with this reference (within one store's orders when store_id is given)."""
    orders = Order.objects.select_related("launch", "sku", "store", "customer", "partner", "pool")
    if store_id is not None:
        orders = orders.filter(store_id=store_id)
    return orders.filter(reference=reference).first()


@dataclass(frozen=True)
class TimelineEvent:
    title: str
    at: datetime.datetime | None = None
    detail: str = ""
    # An email, for the resend action beside it.
    message: Message | None = None


@dataclass(frozen=True)
class OrderStory:
    order: Order
    events: list[TimelineEvent] = field(default_factory=list)
    position: int | None = None

    @property
    def cancellable(self) -> bool:
        return self.order.status in (Order.Status.QUEUED, Order.Status.WAITLISTED, Order.Status.ALLOCATED)


def order_story(*, order: Order) -> OrderStory:
    """The order's timeline: admitted, waitlisted (with its place now), allocated, its
    emails and their status, collected, expired or cancelled; in the order they happened."""
    waiting = order.status in (Order.Status.QUEUED, Order.Status.WAITLISTED)
    position = order_queue_position(order=order).position if waiting else None
    via = order.get_channel_display()
    if order.partner is not None:
        via = f"{via} ({order.partner.name})"
    where = order.get_fulfilment_display() + (f" at {order.store.name}" if order.store else "")
    timed: list[TimelineEvent] = [
        TimelineEvent(
            title="Admitted", at=order.created_at, detail=f"{via}; {where}; sequence {order.sequence}"
        )
    ]
    untimed: list[TimelineEvent] = []
    if order.wait_number is not None:
        detail = f"Waitlist number {order.wait_number} in its pool"
        if order.status == Order.Status.WAITLISTED and position is not None:
            detail += f"; now {position} in line"
        # The allocator keeps no time for it: it happened after admission, before any unit.
        untimed.append(TimelineEvent(title="Waitlisted", detail=detail))
    elif order.status == Order.Status.QUEUED and position is not None:
        untimed.append(TimelineEvent(title="Queued", detail=f"{position} in line"))
    if order.allocated_at:
        detail = f"Collect by {order.collect_by:%a %d %b %H:%M}" if order.collect_by else ""
        timed.append(TimelineEvent(title="Allocated", at=order.allocated_at, detail=detail))
    if order.fulfilled_at:
        title = "Collected" if order.fulfilment == Order.Fulfilment.COLLECT else "Fulfilled"
        timed.append(TimelineEvent(title=title, at=order.fulfilled_at))
    if order.cancelled_at:
        title = "Collection expired" if order.cancel_reason.startswith("Not collected by") else "Cancelled"
        timed.append(TimelineEvent(title=title, at=order.cancelled_at, detail=order.cancel_reason))
    for message in order_messages(customer_id=order.customer_id, reference=order.reference):
        status = message.get_status_display()
        if message.sent_at:
            status += f" {message.sent_at:%H:%M:%S}"
        if message.last_error and message.status != Message.Status.SENT:
            status += f" ({message.last_error[:80]})"
        title = f"Email: {message.get_kind_display()}" + (" (sent again)" if message.resend_of_id else "")
        timed.append(TimelineEvent(title=title, at=message.created_at, detail=status, message=message))
    timed.sort(key=lambda e: e.at or order.created_at)
    return OrderStory(order=order, events=timed[:1] + untimed + timed[1:], position=position)
