"""A store confirms what arrived of a delivery's share: in transit becomes on hand."""

from collections.abc import Mapping

from django.contrib.auth.models import User
from django.db import transaction

from inventory.models import SKU, Delivery, Location, StockMovement
from inventory.selectors import store_delivery_expected, store_delivery_is_received
from inventory.services.deliveries import DeliveryError
from inventory.services.stock import StockChange, stock_apply


def store_delivery_receive(
    *,
    delivery_id: int,
    location: Location,
    received: Mapping[int, int],
    reason: str = "",
    user: User | None = None,
) -> list[StockMovement]:
    """A store confirms what arrived: in transit becomes on hand, and any difference is an
    adjustment with the staff's reason. Once per delivery and store.
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
        return stock_apply(changes=changes, user=user)
