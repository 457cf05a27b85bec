"""A store confirms what arrived of a delivery's share: in transit becomes on hand."""

from collections.abc import Mapping

from django.contrib.auth.models import User
from django.db import transaction

from inventory.models import SKU, Delivery, Location, StockMovement
from inventory.selectors import store_delivery_expected, store_delivery_is_received, store_stock
from inventory.services.deliveries import DeliveryError
from inventory.services.stock import StockChange, stock_apply
from stores.models import WebhookEventType
from stores.services.webhooks import EventIn, webhook_events_enqueue, webhook_partners_listening


def store_delivery_receive(
    *,
    delivery_id: int,
    location: Location,
    received: Mapping[int, int],
    reason: str = "",
    user: User | None = None,
) -> list[StockMovement]:
    """A store confirms what arrived: in transit becomes on hand, and any difference is an
    adjustment with the staff's reason. Once per delivery and store. A partner's store
    makes a store.stock_received webhook event in the same transaction.
    """
    if any(n < 0 for n in received.values()):
        raise DeliveryError("A received quantity cannot be negative.")
    with transaction.atomic():
        # The delivery row lock serialises two confirmations of the same delivery.
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        expected = store_delivery_expected(delivery=delivery, location=location)
        if not expected:
            raise DeliveryError(f"Delivery {delivery} sent nothing to {location}.")
        if store_delivery_is_received(delivery=delivery, location=location):
            raise DeliveryError(f"Delivery {delivery} was already received at {location}.")
        unknown = set(received) - set(expected)
        if unknown:
            raise DeliveryError("Only SKUs of this delivery can be received.")
        skus = {s.pk: s for s in SKU.objects.filter(pk__in=expected)}
        changes = []
        for sku_id, want in sorted(expected.items()):
            got = received.get(sku_id, want)
            both = min(want, got)
            if both:
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.STORE_RECEIPT,
                        on_hand_delta=both,
                        in_transit_delta=-both,
                        reason="Received at store",
                        reference=delivery.reference,
                    )
                )
            if got != want:
                if not reason.strip():
                    raise DeliveryError("Say why what arrived differs from what was sent.")
                short = got < want
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.ADJUSTMENT,
                        on_hand_delta=0 if short else got - want,
                        in_transit_delta=-(want - got) if short else 0,
                        reason=f"{'Short' if short else 'Over'} by {abs(want - got)}: {reason.strip()}"[:255],
                        reference=delivery.reference,
                    )
                )
        movements = stock_apply(changes=changes, user=user)
        _stock_received_webhook(
            delivery=delivery,
            location=location,
            received={sku_id: received.get(sku_id, want) for sku_id, want in expected.items()},
            skus=skus,
        )
        return movements


def _stock_received_webhook(
    *, delivery: Delivery, location: Location, received: Mapping[int, int], skus: Mapping[int, SKU]
) -> None:
    """store.stock_received for the store's partner, if it listens: what arrived, and the
    store's stock after it (as the API's store stock shows it)."""
    store = location.store
    if store is None or store.partner_id is None or store.partner_id not in webhook_partners_listening():
        return
    webhook_events_enqueue(
        events=[
            EventIn(
                partner_id=store.partner_id,
                type=WebhookEventType.STORE_STOCK_RECEIVED,
                subject=store.code,
                data={
                    "store": store.code,
                    "delivery": delivery.reference,
                    "received": [
                        {"sku": skus[sku_id].code, "quantity": n} for sku_id, n in sorted(received.items())
                    ],
                    "stock": [
                        {
                            "sku": line.sku.code,
                            "on_hand": line.stock.on_hand,
                            "reserved": line.stock.reserved,
                            "available": line.stock.available,
                        }
                        for line in store_stock(store=store, launch=None)
                    ],
                },
            )
        ]
    )
