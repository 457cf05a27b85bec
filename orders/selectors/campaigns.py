"""Who is in a campaign's audience: the orders app knows who waits and who ordered."""

from typing import Any

from customers.models import Campaign, Message
from customers.services.campaigns import CampaignRecipient
from inventory.models import Launch
from orders.models import ClaimWindow, Order, StockNotice
from orders.selectors.positions import waitlisted_positions
from orders.services.order_emails import ORDER_FACT_FIELDS, order_facts


def _registered_without_order(*, launch: Launch):
    ordered = Order.objects.filter(launch=launch).exclude(status=Order.Status.CANCELLED).values("customer_id")
    # A customer holding a stock notice's link is not told "sold out" while its window is
    # open; a campaign started again after the window closed reaches them.
    holding = StockNotice.objects.filter(
        launch=launch, window__status=ClaimWindow.Status.OPEN, order__isnull=True
    ).values("customer_id")
    return launch.registrations.exclude(customer_id__in=ordered).exclude(customer_id__in=holding)


def campaign_audience_count(*, launch: Launch, audience: str) -> int:
    """How many customers campaign_audience would return, counted in the database: what
    head office confirms before a campaign starts."""
    if audience == Campaign.Audience.WAITLISTED:
        return (
            Order.objects.filter(launch=launch, status=Order.Status.WAITLISTED)
            .values("customer_id")
            .distinct()
            .count()
        )
    return _registered_without_order(launch=launch).count()


def campaign_audience(*, launch: Launch, audience: str) -> list[CampaignRecipient]:
    """Each customer of the audience once, in order: waitlisted customers with their
    earliest waiting order and its place now; or registered customers without an order."""
    if audience == Campaign.Audience.WAITLISTED:
        first: dict[int, Any] = {}
        for row in (
            Order.objects.filter(launch=launch, status=Order.Status.WAITLISTED)
            .order_by("sequence")
            .values_list("customer_id", "sequence", *ORDER_FACT_FIELDS, named=True)
        ):
            # A customer with several waiting orders hears once, about the earliest.
            first.setdefault(row.customer_id, row)
        positions = waitlisted_positions(launch_id=launch.pk, sequences=[r.sequence for r in first.values()])
        return [
            CampaignRecipient(
                customer_id=row.customer_id,
                # Only an apology goes to the waitlist (customers' CAMPAIGN_AUDIENCES).
                order=order_facts(order=row, kind=Message.Kind.APOLOGY, position=positions.get(row.sequence)),
            )
            for row in first.values()
        ]
    return [
        CampaignRecipient(customer_id=customer_id)
        for customer_id in _registered_without_order(launch=launch)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)
    ]
