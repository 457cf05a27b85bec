"""The order status machine: one table of allowed moves and one function that makes them."""

from django.db import transaction
from django.utils import timezone

from orders.models import Order

S = Order.Status

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.ALLOCATED, S.WAITLISTED, S.CANCELLED}),
    S.WAITLISTED: frozenset({S.ALLOCATED, S.CANCELLED}),
    # An allocated collect order whose deadline passes is cancelled and its unit released.
    S.ALLOCATED: frozenset({S.FULFILLED, S.CANCELLED}),
    S.FULFILLED: frozenset(),
    S.CANCELLED: frozenset(),
}

_TIMESTAMP_FOR: dict[str, str] = {
    S.ALLOCATED: "allocated_at",
    S.FULFILLED: "fulfilled_at",
    S.CANCELLED: "cancelled_at",
}


class InvalidTransition(Exception):
    def __init__(self, *, order: Order, to: str):
        super().__init__(f"Order {order.reference} cannot move from {order.status} to {to}.")
        self.order = order
        self.to = to


@transaction.atomic
def order_transition(*, order: Order, to: str, **fields) -> Order:
    """Move one order to `to`, refusing any move the table does not allow.

    The UPDATE is conditional on the status the caller read, so two writers racing on one
    order cannot both move it: the loser gets InvalidTransition. Extra `fields` are
    written in the same UPDATE.
    """
    if to not in ALLOWED_TRANSITIONS[order.status]:
        raise InvalidTransition(order=order, to=to)
    now = timezone.now()
    if to in _TIMESTAMP_FOR:
        fields.setdefault(_TIMESTAMP_FOR[to], now)
    updated = Order.objects.filter(pk=order.pk, status=order.status).update(status=to, **fields)
    if updated != 1:
        order.refresh_from_db()
        raise InvalidTransition(order=order, to=to)
    order.status = to
    for name, value in fields.items():
        setattr(order, name, value)
    return order
