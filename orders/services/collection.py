"""Click-and-collect: handing a held unit over, and giving back units nobody came for."""

import datetime
import logging

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from customers.models import Message
from inventory.models import StockMovement
from inventory.services import StockChange, stock_apply
from orders.models import Order
from orders.services.cancellation import order_cancel
from orders.services.notices import launch_free_units_serve
from orders.services.order_emails import order_email_enqueue
from orders.services.status import InvalidTransition, order_transition
from orders.services.webhooks import order_webhook
from stores.models import WebhookEventType

logger = logging.getLogger(__name__)


class NotCollectable(Exception):
    pass


@transaction.atomic
def order_collect(*, order: Order, user: User | None = None) -> Order:
    """The customer collects: the held unit leaves the store (on hand and reserved both -1)."""
    order = Order.objects.select_for_update().select_related("pool", "sku").get(pk=order.pk)
    if order.fulfilment != Order.Fulfilment.COLLECT or order.status != Order.Status.ALLOCATED:
        raise NotCollectable(
            f"Order {order.reference} is {order.get_status_display().lower()}, not ready to collect."
        )
    order_transition(order=order, to=Order.Status.FULFILLED)
    stock_apply(
        changes=[
            StockChange(
                location=order.pool,
                sku=order.sku,
                kind=StockMovement.Kind.COLLECTION,
                on_hand_delta=-1,
                reserved_delta=-1,
                reason="Collected by the customer",
                reference=order.reference,
            )
        ],
        user=user,
    )
    order_webhook(order=order, type=WebhookEventType.ORDER_COLLECTED)
    return order


def collect_deadlines_expire(*, now: datetime.datetime | None = None, limit: int = 1000) -> int:
    """Cancel collect orders held past their deadline, release their units to the next
    waiting order of the same pool, and tell each customer (through the outbox, in the same
    transaction as the cancellation). Returns how many expired."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(
            fulfilment=Order.Fulfilment.COLLECT, status=Order.Status.ALLOCATED, collect_by__lt=now
        ).order_by("collect_by", "sequence")[:limit]
    )
    launches = set()
    expired = 0
    for order in due:
        with transaction.atomic():
            try:
                order_cancel(
                    order=order,
                    reason=f"Not collected by {order.collect_by:%Y-%m-%d %H:%M}",
                    webhook=WebhookEventType.ORDER_COLLECTION_EXPIRED,
                    webhook_extra={"collect_by": order.collect_by},
                )
            except InvalidTransition:  # collected or cancelled a moment ago by someone else
                logger.info("collect deadline: %s changed meanwhile", order.reference, exc_info=True)
                continue
            order_email_enqueue(order=order, kind=Message.Kind.COLLECTION_EXPIRED)
        expired += 1
        launches.add(order.launch_id)
    for launch_id in sorted(launches):
        launch_free_units_serve(launch_id=launch_id, now=now)
    return expired
