"""Issue 12: a store counting more than its delivery sent needs a second person.

The receipt is capped at what was sent; the excess is a ReceiptOverCount that moves no
stock until head office (someone other than whoever counted) approves it, and then only
as a ledger adjustment made by the approver. A rejection moves nothing. Store staff
cannot decide. Before the fix a store's count went on hand as typed: one person could
create units that walk-in sales then sold.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.manifests import manifest_parse
from inventory.models import ReceiptOverCount, Stock, StockMovement
from inventory.selectors import store_delivery_expected
from inventory.services import (
    DeliveryError,
    delivery_announce,
    over_count_approve,
    over_count_reject,
    stock_reconcile,
    store_delivery_receive,
)
from inventory.tests.world import make_launch, make_stores
from orders.services.intake import delivery_intake
from orders.services.walkin import SoldOut, ticket_issue, ticket_serve_next
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db

EXTRA = 3
REASON = "three more in the box than on the note"


def level(location, sku) -> tuple[int, int, int]:
    s = Stock.objects.filter(location=location, sku=sku).first()
    return (s.on_hand, s.reserved, s.in_transit) if s else (0, 0, 0)


def sent_in_transit(sent: int) -> tuple:
    """The ledger row of the distribution: the store's share left the warehouse."""
    return (StockMovement.Kind.TRANSFER_IN, 0, sent, "Delivery share, in transit", None)


def ledger(location, delivery) -> list[tuple]:
    """This delivery's ledger rows at this store, oldest first: kind, deltas, reason, who."""
    return list(
        StockMovement.objects.filter(location=location, reference=delivery.reference)
        .order_by("pk")
        .values_list("kind", "on_hand_delta", "in_transit_delta", "reason", "created_by__username")
    )


@pytest.fixture
def world():
    """A delivery distributed to two stores (no orders waiting): each has units in transit."""
    launch, (sku,) = make_launch(auto_apply=True)
    s0, s1 = make_stores(2)
    body = f"reference,expected_on,sku,quantity\nDLV-OC,{timezone.localdate()},{sku.code},30\n"
    delivery, _ = delivery_announce(manifest=manifest_parse(content=body.encode()), source="test")
    assert delivery_intake(delivery_id=delivery.pk).distributed
    delivery.refresh_from_db()
    sent = store_delivery_expected(delivery=delivery, location=s0)[sku.pk]
    assert sent > 0 and level(s0, sku) == (0, 0, sent)
    staff = StaffMembershipFactory(store=s0.store, user__username="counter").user
    colleague = StaffMembershipFactory(store=s0.store, user__username="colleague").user
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, role=StaffMembership.Role.HEAD_OFFICE)
    return launch, sku, delivery, s0, sent, staff, colleague, head


def count_over(world) -> ReceiptOverCount:
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    store_delivery_receive(
        delivery_id=delivery.pk, location=s0, received={sku.pk: sent + EXTRA}, reason=REASON, user=staff
    )
    return ReceiptOverCount.objects.get()


# --- Services ---------------------------------------------------------------------------


def test_an_over_count_is_held_and_moves_no_stock_beyond_what_was_sent(world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    with pytest.raises(DeliveryError, match="Say why"):
        store_delivery_receive(
            delivery_id=delivery.pk, location=s0, received={sku.pk: sent + EXTRA}, user=staff
        )
    assert level(s0, sku) == (0, 0, sent) and not ReceiptOverCount.objects.exists()

    claim = count_over(world)
    assert (claim.status, claim.sent, claim.counted, claim.excess) == ("pending", sent, sent + EXTRA, EXTRA)
    assert (claim.reason, claim.reported_by, claim.decided_by) == (REASON, staff, None)
    # The receipt is of what was sent: the excess is not on hand, nothing is left in transit.
    assert level(s0, sku) == (sent, 0, 0)
    # The cap is in the ledger: one store receipt of what was sent, naming the held excess.
    assert ledger(s0, delivery) == [
        sent_in_transit(sent),
        (
            StockMovement.Kind.STORE_RECEIPT,
            sent,
            -sent,
            f"Received at store; {EXTRA} more counted, held for head office",
            "counter",
        ),
    ]
    assert stock_reconcile() == []


def test_walk_ins_cannot_buy_units_only_a_miscount_created(world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    count_over(world)
    for _ in range(sent + 1):
        ticket_issue(launch=launch, store=s0.store)
    for _ in range(sent):
        assert ticket_serve_next(launch=launch, store=s0.store, sku=sku, user=staff) is not None
    with pytest.raises(SoldOut):
        ticket_serve_next(launch=launch, store=s0.store, sku=sku, user=staff)
    assert level(s0, sku) == (0, 0, 0)


def test_head_office_approval_moves_the_counted_excess_as_a_ledger_adjustment_by_the_approver(world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    claim = count_over(world)
    with pytest.raises(DeliveryError, match="Someone other than whoever counted"):
        over_count_approve(over_count_id=claim.pk, user=staff)
    with pytest.raises(DeliveryError, match="Someone other than whoever counted"):
        over_count_reject(over_count_id=claim.pk, user=staff)
    assert level(s0, sku) == (sent, 0, 0)

    movement = over_count_approve(over_count_id=claim.pk, user=head)
    assert (movement.kind, movement.on_hand_delta, movement.in_transit_delta) == (
        StockMovement.Kind.ADJUSTMENT,
        EXTRA,
        0,
    )
    assert (movement.created_by, movement.reference, movement.location) == (head, delivery.reference, s0)
    assert level(s0, sku) == (sent + EXTRA, 0, 0)
    claim.refresh_from_db()
    assert (claim.status, claim.decided_by) == ("approved", head) and claim.decided_at is not None
    # The ledger's history for this delivery at this store: the capped receipt, then the approval.
    assert ledger(s0, delivery) == [
        sent_in_transit(sent),
        (
            StockMovement.Kind.STORE_RECEIPT,
            sent,
            -sent,
            f"Received at store; {EXTRA} more counted, held for head office",
            "counter",
        ),
        (StockMovement.Kind.ADJUSTMENT, EXTRA, 0, f"Over by {EXTRA}, approved by head: {REASON}", "head"),
    ]
    # Decided once: neither a second approval nor a late rejection moves anything.
    movements = StockMovement.objects.count()
    with pytest.raises(DeliveryError, match="already approved"):
        over_count_approve(over_count_id=claim.pk, user=colleague)
    with pytest.raises(DeliveryError, match="already approved"):
        over_count_reject(over_count_id=claim.pk, user=head)
    assert StockMovement.objects.count() == movements and level(s0, sku) == (sent + EXTRA, 0, 0)
    assert stock_reconcile() == []


def test_a_rejected_over_count_moves_nothing_and_stays_decided(world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    claim = count_over(world)
    movements = StockMovement.objects.count()
    over_count_reject(over_count_id=claim.pk, user=head)
    claim.refresh_from_db()
    assert (claim.status, claim.decided_by) == ("rejected", head)
    assert StockMovement.objects.count() == movements
    assert level(s0, sku) == (sent, 0, 0)
    with pytest.raises(DeliveryError, match="already rejected"):
        over_count_approve(over_count_id=claim.pk, user=head)
    assert level(s0, sku) == (sent, 0, 0) and stock_reconcile() == []


def test_a_receipt_is_confirmed_once_so_the_excess_cannot_be_counted_again(world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    count_over(world)
    with pytest.raises(DeliveryError, match="already received"):
        store_delivery_receive(
            delivery_id=delivery.pk,
            location=s0,
            received={sku.pk: sent + EXTRA},
            reason=REASON,
            user=colleague,
        )
    assert ReceiptOverCount.objects.count() == 1 and level(s0, sku) == (sent, 0, 0)


# --- Pages ------------------------------------------------------------------------------


def test_over_counts_are_decided_on_head_office_page_and_never_by_store_staff(
    client, world, django_capture_on_commit_callbacks
):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    receiving = reverse("inventory:store-receiving", kwargs={"code": s0.code})
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            receiving,
            {"delivery": delivery.reference, f"received-{sku.pk}": str(sent + EXTRA), "reason": REASON},
            follow=True,
        )
    assert b"the extra units wait for head office" in done.content
    assert level(s0, sku) == (sent, 0, 0)
    claim = ReceiptOverCount.objects.get()
    assert f"{EXTRA} more counted than sent".encode() in done.content

    # Store staff, the counter or a colleague, can neither see the queue nor decide.
    decide = reverse("inventory:over-count-decide", kwargs={"pk": claim.pk})
    for user in (staff, colleague):
        client.force_login(user)
        assert client.get(reverse("inventory:over-counts")).status_code == 403
        assert client.post(decide, {"decision": "approve"}).status_code == 403
    # Head office with a password alone is sent to prove its second factor first.
    client.force_login(head)
    unproved = client.post(decide, {"decision": "approve"})
    assert unproved.status_code == 302 and reverse("two-factor-verify") in unproved["Location"]
    claim.refresh_from_db()
    assert claim.status == "pending" and level(s0, sku) == (sent, 0, 0)

    head_office_login(client, head)
    queue = client.get(reverse("inventory:over-counts"))
    assert queue.status_code == 200
    assert f'data-over-count="{claim.pk}"'.encode() in queue.content
    assert f"Approve {EXTRA} more".encode() in queue.content
    nonsense = client.post(decide, {"decision": "maybe"}, follow=True)
    assert b"Choose approve or reject." in nonsense.content
    assert level(s0, sku) == (sent, 0, 0)
    with django_capture_on_commit_callbacks(execute=True):
        approved = client.post(decide, {"decision": "approve"}, follow=True)
    assert b"Over-count approved: the units are in stock" in approved.content
    assert b"Nothing is waiting." in approved.content
    assert level(s0, sku) == (sent + EXTRA, 0, 0)
    assert b"Approved by head" in approved.content

    # The store's page shows the ledger: the capped receipt and head office's approval.
    client.force_login(staff)
    words = " ".join(client.get(receiving).content.decode().split())
    assert "held for head office · counter" in words
    assert f"Over by {EXTRA}, approved by head: {REASON} · head" in words
    assert "Approved</strong> (head)" in words
    assert stock_reconcile() == []


def test_a_rejection_on_the_page_moves_nothing(client, world):
    launch, sku, delivery, s0, sent, staff, colleague, head = world
    claim = count_over(world)
    head_office_login(client, head)
    rejected = client.post(
        reverse("inventory:over-count-decide", kwargs={"pk": claim.pk}), {"decision": "reject"}, follow=True
    )
    assert b"Over-count rejected: no stock moved" in rejected.content
    assert b"Rejected by head" in rejected.content
    claim.refresh_from_db()
    assert claim.status == "rejected" and level(s0, sku) == (sent, 0, 0)
    again = client.post(
        reverse("inventory:over-count-decide", kwargs={"pk": claim.pk}), {"decision": "approve"}, follow=True
    )
    assert b"already rejected" in again.content and level(s0, sku) == (sent, 0, 0)
