"""Campaigns of a launch: the audience from the orders table, the mail through the outbox.

customers.services.campaigns records a campaign and queues its messages; who is in the
audience (who waits, who has not ordered) is the orders app's knowledge, so head
office's pages and the allocator's automatic apology start campaigns here.
"""

from django.contrib.auth.models import User

from customers.models import Campaign, Customer, Message
from customers.services.campaigns import CampaignHasNoRecipients, campaign_check, campaign_start
from customers.services.outbox import RenderedEmail, message_render
from inventory.models import Launch
from inventory.selectors import location_online_pool_id, pool_available
from orders.models import Order
from orders.selectors.campaigns import campaign_audience
from orders.selectors.positions import waitlisted_positions
from orders.services.order_emails import order_facts


def launch_campaign_start(
    *,
    launch: Launch,
    kind: str,
    audience: str,
    started_by: User | None = None,
    automatic: bool = False,
) -> Campaign:
    """Start (or re-start) a campaign to an audience of the launch (see campaign_start)."""
    campaign_check(kind=kind, audience=audience)
    return campaign_start(
        launch=launch,
        kind=kind,
        audience=audience,
        recipients=campaign_audience(launch=launch, audience=audience),
        started_by=started_by,
        automatic=automatic,
    )


def launch_sold_out_notify(*, launch: Launch) -> list[Campaign]:
    """If the online pool has no unit left of any SKU and head office switched
    auto_apology on, apologise to the waitlist and to registered customers without an order.

    Precondition: the allocator lock is held, so the sell-out cannot be undone meanwhile.
    Idempotent: call it on every run that may see the launch sold out.
    """
    if not launch.auto_apology:
        return []
    sku_ids = list(launch.skus.values_list("pk", flat=True))
    if any(pool_available(pool_id=location_online_pool_id(), sku_ids=sku_ids).values()):
        return []
    started = []
    for audience in (Campaign.Audience.WAITLISTED, Campaign.Audience.REGISTERED_WITHOUT_ORDER):
        try:
            started.append(
                launch_campaign_start(
                    launch=launch, kind=Message.Kind.APOLOGY, audience=audience, automatic=True
                )
            )
        except CampaignHasNoRecipients:
            continue  # nobody to apologise to in that audience
    return started


def campaign_preview(*, launch: Launch, kind: str, customer: Customer) -> RenderedEmail:
    """The email this customer would get from a campaign of this kind, rendered, not sent."""
    order = (
        Order.objects.filter(launch=launch, customer=customer, status=Order.Status.WAITLISTED)
        .order_by("sequence")
        .first()
        if kind == Message.Kind.APOLOGY
        else None
    )
    facts = None
    if order is not None:
        facts = order_facts(
            order=order,
            kind=kind,
            position=waitlisted_positions(launch_id=launch.pk, sequences=[order.sequence]).get(
                order.sequence
            ),
        )
    message = Message(
        kind=kind,
        dedupe_key="preview",
        customer=customer,
        launch=launch,
        order_reference=facts.reference if facts else "",
        context=facts.context() if facts else {},
    )
    return message_render(message=message)
