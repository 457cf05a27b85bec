"""Walk-in queue in a store: tickets in order, each served by selling one unit."""

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from inventory.models import SKU, Launch, StockMovement
from inventory.services import (
    InsufficientStock,
    StockChange,
    location_for_store,
    stock_apply,
    stock_rows_for_update,
)
from orders.models import ClaimWindow, Order, Ticket
from stores.models import Store


class WalkInError(Exception):
    pass


class SoldOut(WalkInError):
    pass


@transaction.atomic
def ticket_issue(*, launch: Launch, store: Store, customer=None, sku: SKU | None = None) -> Ticket:
    """The next ticket of this store's queue. The store row lock numbers tickets one by one."""
    Store.objects.select_for_update().filter(pk=store.pk).first()
    number = (Ticket.objects.filter(launch=launch, store=store).aggregate(n=Max("number"))["n"] or 0) + 1
    return Ticket.objects.create(launch=launch, store=store, number=number, customer=customer, sku=sku)


def _first_waiting_ticket(*, launch: Launch, store: Store) -> Ticket | None:
    """The head of the queue, locked. Must be called inside a transaction.

    SKIP LOCKED: two staff acting at once get two different tickets, each in ticket order.
    """
    return (
        Ticket.objects.select_for_update(skip_locked=True)
        .filter(launch=launch, store=store, status=Ticket.Status.WAITING)
        .order_by("number")
        .first()
    )


def _close(ticket: Ticket, *, status: str, user: User | None, **fields) -> Ticket:
    ticket.status = status
    ticket.served_at = timezone.now()
    ticket.served_by = user if user is not None and user.is_authenticated else None
    for name, value in fields.items():
        setattr(ticket, name, value)
    ticket.save(update_fields=["status", "served_at", "served_by", *fields])
    return ticket


@transaction.atomic
def ticket_serve_next(*, launch: Launch, store: Store, sku: SKU, user: User | None = None) -> Ticket | None:
    """Sell one unit to the first waiting ticket. None if nobody waits.

    Raises SoldOut (and changes nothing) when no unit is free: units held for the store's
    click-and-collect orders, or owed to collect orders still waiting, are not for sale.
    """
    ticket = _first_waiting_ticket(launch=launch, store=store)
    if ticket is None:
        return None
    location = location_for_store(store=store)
    # Lock the stock row before looking at the collect orders, so the allocator (which
    # locks the same row) cannot hand a unit over between the check and the sale.
    stock_rows_for_update(pairs=[(location.pk, sku.pk)])
    waiting_collect = Order.objects.filter(
        launch=launch, sku=sku, pool=location, status__in=[Order.Status.QUEUED, Order.Status.WAITLISTED]
    ).count()
    if waiting_collect:
        raise SoldOut(f"Units of {sku} are owed to {waiting_collect} waiting click-and-collect order(s).")
    try:
        stock_apply(
            changes=[
                StockChange(
                    location=location,
                    sku=sku,
                    kind=StockMovement.Kind.SALE,
                    on_hand_delta=-1,
                    reason="Walk-in sale",
                    reference=f"ticket:{store.code}-{ticket.number}",
                )
            ],
            user=user,
        )
    except InsufficientStock:
        held = _held_for_notices(launch=launch, location=location, sku=sku)
        if held:
            raise SoldOut(held) from None
        raise SoldOut(f"No {sku} left to sell at {store.code}.") from None
    return _close(ticket, status=Ticket.Status.SERVED, user=user, sku=sku)


def _held_for_notices(*, launch: Launch, location, sku: SKU) -> str:
    """Why a unit on the shelf is not for sale: held for customers told by a stock notice.

    Held units are reserved, so the sale's guard refuses them like any reserved unit; this
    only puts the reason into words for the staff at the counter.
    """
    windows = list(
        ClaimWindow.objects.filter(launch=launch, pool=location, sku=sku, status=ClaimWindow.Status.OPEN)
    )
    held = sum(w.held for w in windows)
    if not held:
        return ""
    until = timezone.localtime(max(w.closes_at for w in windows))
    return (
        f"{held} unit(s) of {sku} are held for customers told by a stock notice, until {until:%H:%M}; "
        "what they do not order then comes back for sale."
    )


@transaction.atomic
def ticket_pass_over(*, launch: Launch, store: Store, user: User | None = None) -> Ticket | None:
    """The first waiting ticket leaves without a unit (sold out, or the customer went).

    None if nobody waits. The ticket is closed as "no sale" and the queue moves on; no
    stock moves.
    """
    ticket = _first_waiting_ticket(launch=launch, store=store)
    if ticket is None:
        return None
    return _close(ticket, status=Ticket.Status.NO_SALE, user=user)
