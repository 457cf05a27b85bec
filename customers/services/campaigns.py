"""Head-office campaigns: one email to every customer of an audience of a launch.

A campaign writes its messages into the outbox with the dedupe key kind:launch:customer,
so starting it twice, or starting it for two audiences that overlap, tells nobody twice.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from customers.models import Campaign, Customer, Message
from customers.services.outbox import RenderedEmail, message_render, messages_enqueue_bulk, outbox_nudge

# Which kinds head office may send to which audience. A back-in-stock note to customers
# who already wait in the queue would be wrong: they keep their place and hear when served.
CAMPAIGN_AUDIENCES = {
    Message.Kind.APOLOGY: (Campaign.Audience.WAITLISTED, Campaign.Audience.REGISTERED_WITHOUT_ORDER),
    Message.Kind.BACK_IN_STOCK: (Campaign.Audience.REGISTERED_WITHOUT_ORDER,),
}
# Order statuses named as strings: customers may not import orders (orders -> customers).
WAITLISTED = "waitlisted"
CANCELLED = "cancelled"


class CampaignNotAllowed(ValueError):
    """This kind of message cannot go to this audience."""


def campaign_dedupe_key(*, kind: str, launch_id: int, customer_id: int) -> str:
    return f"{kind}:{launch_id}:{customer_id}"


def _audience_rows(*, launch, audience: str) -> list[tuple[int, int | None]]:
    """(customer id, order sequence or None) for each customer of the audience, once each."""
    if audience == Campaign.Audience.WAITLISTED:
        rows: dict[int, int] = {}
        for sequence, customer_id in (
            launch.orders.filter(status=WAITLISTED)
            .order_by("sequence")
            .values_list("sequence", "customer_id")
        ):
            # A customer with several waiting orders hears once, about the earliest.
            rows.setdefault(customer_id, sequence)
        return list(rows.items())
    ordered = launch.orders.exclude(status=CANCELLED).values("customer_id")
    return [
        (customer_id, None)
        for customer_id in launch.registrations.exclude(customer_id__in=ordered)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)
    ]


def campaign_start(*, launch, kind: str, audience: str, started_by=None, automatic: bool = False) -> Campaign:
    """Start (or re-start) a campaign: queue one message per customer of the audience.

    Safe to call again and from several places at once: the Campaign row is unique per
    (launch, kind, audience) and every message is deduplicated per customer, so a second
    start only reaches customers who joined the audience since. Sending begins after
    commit.
    """
    if audience not in CAMPAIGN_AUDIENCES.get(kind, ()):
        raise CampaignNotAllowed(f"A {kind} campaign cannot go to {audience}.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                campaign, _ = Campaign.objects.get_or_create(
                    launch=launch,
                    kind=kind,
                    audience=audience,
                    defaults={"started_by": started_by, "automatic": automatic},
                )
        except IntegrityError:
            campaign = Campaign.objects.get(launch=launch, kind=kind, audience=audience)
        # Serialise concurrent starts of the same campaign so its count is exact.
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        messages_enqueue_bulk(
            messages=(
                Message(
                    kind=kind,
                    dedupe_key=campaign_dedupe_key(kind=kind, launch_id=launch.pk, customer_id=customer_id),
                    customer_id=customer_id,
                    order_id=order_id,
                    launch=launch,
                    campaign=campaign,
                )
                for customer_id, order_id in _audience_rows(launch=launch, audience=audience)
            )
        )
        campaign.queued = campaign.messages.count()
        campaign.save(update_fields=["queued"])
        outbox_nudge()
    return campaign


def launch_sold_out_notify(*, launch) -> list[Campaign]:
    """The launch has sold out: if head office switched auto_apology on, apologise.

    Call inside the transaction that records the sell-out (the allocator's), so the
    apology is as durable as the event. Idempotent: call it on every run that sees the
    launch sold out.
    """
    if not launch.auto_apology:
        return []
    return [
        campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=audience, automatic=True)
        for audience in (Campaign.Audience.WAITLISTED, Campaign.Audience.REGISTERED_WITHOUT_ORDER)
    ]


def campaign_preview(*, launch, kind: str, customer: Customer) -> RenderedEmail:
    """The email this customer would get from a campaign of this kind, rendered, not sent."""
    order = (
        launch.orders.filter(customer=customer, status=WAITLISTED)
        .select_related("sku", "store", "launch")
        .order_by("sequence")
        .first()
        if kind == Message.Kind.APOLOGY
        else None
    )
    message = Message(
        kind=kind,
        dedupe_key="preview",
        customer=customer,
        order=order,
        launch=launch,
        context={},
    )
    return message_render(message=message)
