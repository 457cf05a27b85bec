"""Reads for a store's live page: its walk-in queue and its click-and-collect orders.

A handful of aggregate queries over the partial indexes; none per order or ticket.
"""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q

from inventory.models import Launch
from orders.models import Order, Ticket
from stores.models import Store

# A collect order the store still has to act on: waiting for a unit, or holding one.
COLLECT_WAITING_STATUSES: tuple[str, ...] = (
    Order.Status.QUEUED,
    Order.Status.WAITLISTED,
    Order.Status.ALLOCATED,
)

# Collect orders still owed a unit: while any waits, the store's units of that SKU go to
# them first (ticket_serve_next refuses the walk-in sale).
COLLECT_OWED_STATUSES: tuple[str, ...] = (Order.Status.QUEUED, Order.Status.WAITLISTED)


@dataclass(frozen=True)
class WalkInQueue:
    now_serving: int | None  # the highest ticket number served so far
    next_up: int | None  # the lowest ticket number still waiting
    waiting: int
    last_issued: int | None


@dataclass
class StoreCollect:
    counts: dict[str, int]  # by status, COLLECT_WAITING_STATUSES only
    owed_by_sku: dict[int, int]  # queued + waitlisted per SKU id

    @property
    def waiting_total(self) -> int:
        return sum(self.counts.values())


def store_walkin_queue(*, store: Store, launch: Launch | None) -> WalkInQueue:
    """The store's ticket queue for the launch in one aggregate over the ticket index."""
    if launch is None:
        return WalkInQueue(now_serving=None, next_up=None, waiting=0, last_issued=None)
    row = Ticket.objects.filter(launch=launch, store=store).aggregate(
        now_serving=Max("number", filter=Q(status__in=[Ticket.Status.SERVED, Ticket.Status.NO_SALE])),
        next_up=Min("number", filter=Q(status=Ticket.Status.WAITING)),
        waiting=Count("pk", filter=Q(status=Ticket.Status.WAITING)),
        last_issued=Max("number"),
    )
    return WalkInQueue(**row)


def store_collect(*, store: Store, launch: Launch | None) -> StoreCollect:
    """Collect orders of this store still to be handed over: by status, and owed per SKU. One query."""
    counts = dict.fromkeys(COLLECT_WAITING_STATUSES, 0)
    owed: dict[int, int] = defaultdict(int)
    if launch is not None:
        for sku_id, status, n in (
            Order.objects.filter(
                launch=launch,
                store=store,
                fulfilment=Order.Fulfilment.COLLECT,
                status__in=COLLECT_WAITING_STATUSES,
            )
            .values_list("sku_id", "status")
            .annotate(n=Count("pk"))
        ):
            counts[status] += n
            if status in COLLECT_OWED_STATUSES:
                owed[sku_id] += n
    return StoreCollect(counts=counts, owed_by_sku=dict(owed))


def store_collect_ready(*, store: Store, launch: Launch | None, limit: int = 50) -> list[Order]:
    """Collect orders holding a unit at this store, oldest first (bounded: a store holds
    a few dozen phones, and the page shows how many more there are)."""
    if launch is None:
        return []
    return list(
        Order.objects.filter(
            launch=launch, store=store, fulfilment=Order.Fulfilment.COLLECT, status=Order.Status.ALLOCATED
        )
        .select_related("customer", "sku")
        .order_by("sequence")[:limit]
    )
