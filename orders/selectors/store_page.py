"""Reads for a store's live page: its walk-in queue and its click-and-collect orders.

A handful of small queries over partial indexes and the allocator's counts: none per
order or ticket, and none whose cost grows with the store's waitlist.
"""

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, Min, Q, QuerySet

from inventory.models import Launch
from orders.models import Order, Ticket
from orders.selectors.availability import pool_waiting
from stores.models import Store

# A collect order the store still has to act on: waiting for a unit, or holding one.
COLLECT_WAITING_STATUSES: tuple[str, ...] = (
    Order.Status.QUEUED,
    Order.Status.WAITLISTED,
    Order.Status.ALLOCATED,
)


@dataclass(frozen=True)
class WalkInQueue:
    now_serving: int | None  # the highest ticket number served so far
    next_up: int | None  # the lowest ticket number still waiting
    waiting: int
    last_issued: int | None


@dataclass(frozen=True)
class StoreCollect:
    ready: int  # collect orders holding a unit here, to hand over
    owed_by_sku: dict[int, int]  # orders waiting for a unit of this store, per SKU id

    @property
    def owed(self) -> int:
        return sum(self.owed_by_sku.values())

    @property
    def waiting_total(self) -> int:
        return self.ready + self.owed


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


def store_collect(
    *, store: Store, launch: Launch | None, pool_id: int | None, sku_ids: list[int]
) -> StoreCollect:
    """Collect orders of this store still to be handed over: ready, and owed per SKU.

    Costs the same at a store with 30 orders or 30,000: ready orders are counted over the
    small partial index of orders holding a unit for collection, owed ones read from the
    allocator's waitlist count (orders waiting for this store's stock are its pool's).
    """
    if launch is None or pool_id is None:
        return StoreCollect(ready=0, owed_by_sku={})
    return StoreCollect(
        ready=_ready(store=store, launch=launch).count(),
        owed_by_sku=pool_waiting(launch=launch, pool_id=pool_id, sku_ids=sku_ids),
    )


def _ready(*, store: Store, launch: Launch) -> QuerySet[Order]:
    # Exactly the condition of the order_ready_to_collect index, so it is the one read.
    return Order.objects.filter(
        store=store, launch=launch, status=Order.Status.ALLOCATED, fulfilment=Order.Fulfilment.COLLECT
    )


def store_collect_ready(
    *, store: Store, launch: Launch | None, search: str = "", page: int = 1, per_page: int = 20
) -> Page:
    """One page of the collect orders holding a unit here, oldest first, optionally only
    those whose reference starts with, or whose customer's name contains, `search`."""
    if launch is None:
        return Paginator(Order.objects.none(), per_page).get_page(1)
    orders = _ready(store=store, launch=launch)
    search = search.strip()
    if search:
        orders = orders.filter(Q(reference__startswith=search.upper()) | Q(customer__name__icontains=search))
    return Paginator(orders.select_related("customer", "sku").order_by("sequence"), per_page).get_page(page)
