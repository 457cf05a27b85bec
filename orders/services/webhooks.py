"""Webhook events about partners' orders, written in the transaction of the change.

The events themselves are the stores app's (stores.services.webhooks); what an order
looks like in them is this app's knowledge (orders.selectors.orders.order_document), so
each service that changes a partner's order calls here. An order of no partner, or of a
partner that listens to nothing, costs no query at all, or one small one.
"""

from collections.abc import Mapping
from typing import Any

from orders.models import Order
from orders.selectors.orders import order_document, order_summary
from stores.models import WebhookEventType
from stores.services.webhooks import EventIn, webhook_events_enqueue, webhook_partners_listening


def order_webhook(*, order: Order, type: WebhookEventType, extra: Mapping[str, Any] | None = None) -> int:
    """Record `type` about this order for its partner. Call inside the change's
    transaction, after the change (the event carries the order as it is now)."""
    partner_id = order.partner_id
    if partner_id is None or partner_id not in webhook_partners_listening():
        return 0
    fresh = Order.objects.select_related("launch", "customer", "sku", "store").get(pk=order.pk)
    data = order_document(order_summary(fresh)) | dict(extra or {})
    return webhook_events_enqueue(
        events=[EventIn(partner_id=partner_id, type=type, data=data, subject=fresh.reference)]
    )
