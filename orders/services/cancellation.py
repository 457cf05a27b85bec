"""Cancelling an order: the unit it held (if any) goes back to its pool, next in line first."""

from functools import partial

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F

from customers.models import Message
from inventory.models import StockMovement
from inventory.services import StockChange, stock_apply
from orders.models import Order, PoolState
from orders.services.locks import allocator_lock
from orders.services.notices import free_units_nudge
from orders.services.order_emails import order_email_enqueue
from orders.services.status import InvalidTransition, order_transition
from orders.services.webhooks import order_webhook
from stores.models import WebhookEventType

CANCEL_REASON_MAX = Order._meta.get_field("cancel_reason").max_length or 200


class OrderNotCancellable(Exception):
    pass


@transaction.atomic
def order_cancel(
    *,
    order: Order,
    reason: str = "",
    user: User | None = None,
    webhook: WebhookEventType = WebhookEventType.ORDER_CANCELLED,
    webhook_extra: dict | None = None,
) -> Order:
    """Cancel a queued, waitlisted or allocated order, releasing an allocated unit.

    Takes the allocator lock, so it never races an allocator batch over the same order.
    The released unit goes to the next waiting order of the pool on the next run, or,
    when nobody waits there, to the pool's next registered customers (stock notices). A
    partner's order makes one webhook event, `webhook` (order.cancelled, or the caller's
    more telling type, such as order.collection_expired).
    """
    allocator_lock(launch_id=order.launch_id)
    order.refresh_from_db()
    was = order.status
    order_transition(order=order, to=Order.Status.CANCELLED, cancel_reason=reason[:CANCEL_REASON_MAX])
    if was == Order.Status.WAITLISTED:
        PoolState.objects.filter(
            launch_id=order.launch_id, sku_id=order.sku_id, pool_id=order.pool_id
        ).update(waiting=F("waiting") - 1)
    elif was == Order.Status.ALLOCATED:
        stock_apply(
            changes=[
                StockChange(
                    location=order.pool,
                    sku=order.sku,
                    kind=StockMovement.Kind.RELEASE,
                    reserved_delta=-1,
                    reason=reason or "Order cancelled",
                    reference=order.reference,
                )
            ],
            user=user,
        )
    order_webhook(order=order, type=webhook, extra=webhook_extra)
    transaction.on_commit(partial(free_units_nudge, launch_id=order.launch_id))
    return order


@transaction.atomic
def order_cancel_by_staff(*, order: Order, reason: str, user: User) -> Order:
    """Staff cancel an order (head office, or the store it is collected at) and the
    customer is told.

    The cancellation and its email commit together (the outbox row is written in this
    transaction, keyed by the event, so however often this is asked the customer hears
    once); the unit it held goes to the next waiting order of its pool when the allocator
    runs, nudged on commit. An order already cancelled or collected is refused.
    """
    try:
        order = order_cancel(order=order, reason=reason, user=user)
    except InvalidTransition as exc:
        raise OrderNotCancellable(
            f"Order {exc.order.reference} is {exc.order.get_status_display().lower()}: it cannot be cancelled."
        ) from exc
    order_email_enqueue(order=order, kind=Message.Kind.ORDER_CANCELLED)
    return order
