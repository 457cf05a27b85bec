"""A store confirms what arrived of a delivery's share: in transit becomes on hand.

Counting more than was sent needs a second person: the receipt is capped at what was
sent, and the excess is a ReceiptOverCount held for head office. Only head office's
approval (by someone other than whoever counted) moves it into stock, as a ledger
adjustment; so the cap and the approval are both in the ledger's history, and walk-in
sales can never sell units that only a miscount created.
"""

from collections.abc import Mapping

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from inventory.models import SKU, Delivery, Location, ReceiptOverCount, StockMovement
from inventory.selectors import store_delivery_expected, store_delivery_is_received, store_stock_document
from inventory.services.deliveries import DeliveryError
from inventory.services.stock import StockChange, stock_apply
from stores.models import WebhookEventType
from stores.services.webhooks import EventIn, webhook_events_enqueue, webhook_partners_listening

REASON_MAX = 200


def store_delivery_receive(
    *,
    delivery_id: int,
    location: Location,
    received: Mapping[int, int],
    reason: str = "",
    user: User | None = None,
) -> list[StockMovement]:
    """A store confirms what arrived: in transit becomes on hand. Once per delivery and store.

    Short: the missing units leave in transit as an adjustment with the staff's reason.
    Over: the receipt is of what was sent, and the excess is held (ReceiptOverCount) for
    head office's approval (over_count_approve); no stock moves for it now. A partner's
    store makes a store.stock_received webhook event in the same transaction.
    """
    if any(n < 0 for n in received.values()):
        raise DeliveryError("A received quantity cannot be negative.")
    reason = reason.strip()[:REASON_MAX]
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
        over: list[ReceiptOverCount] = []
        for sku_id, want in sorted(expected.items()):
            got = received.get(sku_id, want)
            if got != want and not reason:
                raise DeliveryError("Say why what arrived differs from what was sent.")
            both = min(want, got)
            if both:
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.STORE_RECEIPT,
                        on_hand_delta=both,
                        in_transit_delta=-both,
                        reason=(
                            f"Received at store; {got - want} more counted, held for head office"
                            if got > want
                            else "Received at store"
                        ),
                        reference=delivery.reference,
                    )
                )
            if got < want:
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.ADJUSTMENT,
                        in_transit_delta=-(want - got),
                        reason=f"Short by {want - got}: {reason}"[:255],
                        reference=delivery.reference,
                    )
                )
            elif got > want:
                over.append(
                    ReceiptOverCount(
                        delivery=delivery,
                        location=location,
                        sku=skus[sku_id],
                        sent=want,
                        counted=got,
                        reason=reason,
                        reported_by=user,
                    )
                )
        ReceiptOverCount.objects.bulk_create(over)
        movements = stock_apply(changes=changes, user=user)
        _stock_received_webhook(
            delivery=delivery,
            location=location,
            # What went on hand now: an over-count's excess waits for head office.
            received={sku_id: min(received.get(sku_id, want), want) for sku_id, want in expected.items()},
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
                    "stock": store_stock_document(store=store),
                },
            )
        ]
    )


def over_count_approve(*, over_count_id: int, user: User) -> StockMovement:
    """Head office accepts a store's over-count: the excess goes on hand, as an adjustment
    made by the approver. The approver must not be whoever counted."""
    with transaction.atomic():
        claim = _pending_for_update(over_count_id=over_count_id, user=user)
        (movement,) = stock_apply(
            changes=[
                StockChange(
                    location=claim.location,
                    sku=claim.sku,
                    kind=StockMovement.Kind.ADJUSTMENT,
                    on_hand_delta=claim.excess,
                    reason=(f"Over by {claim.excess}, approved by {user.get_username()}: {claim.reason}")[
                        :255
                    ],
                    reference=claim.delivery.reference,
                )
            ],
            user=user,
        )
        _decide(claim, ReceiptOverCount.Status.APPROVED, user)
    return movement


def over_count_reject(*, over_count_id: int, user: User) -> ReceiptOverCount:
    """Head office refuses a store's over-count: no stock moves; the decision is kept."""
    with transaction.atomic():
        claim = _pending_for_update(over_count_id=over_count_id, user=user)
        _decide(claim, ReceiptOverCount.Status.REJECTED, user)
    return claim


def _pending_for_update(*, over_count_id: int, user: User) -> ReceiptOverCount:
    """The claim, locked; refused unless it still waits and the decider did not count it."""
    claim = (
        ReceiptOverCount.objects.select_for_update(of=("self",))
        .select_related("delivery", "location", "sku")
        .filter(pk=over_count_id)
        .first()
    )
    if claim is None:
        raise DeliveryError("There is no such over-count.")
    if claim.status != ReceiptOverCount.Status.PENDING:
        raise DeliveryError(f"This over-count was already {claim.get_status_display().lower()}.")
    if claim.reported_by_id is not None and claim.reported_by_id == user.pk:
        raise DeliveryError("Someone other than whoever counted must decide on an over-count.")
    return claim


def _decide(claim: ReceiptOverCount, status: str, user: User) -> None:
    claim.status = status
    claim.decided_by = user
    claim.decided_at = timezone.now()
    claim.save(update_fields=["status", "decided_by", "decided_at"])
