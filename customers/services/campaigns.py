"""Head-office campaigns: one email to every customer of an audience of a launch.

Who is in an audience is decided by the caller (the orders app knows who waits and who
ordered: orders.services.campaigns); this module records the campaign and puts one
message per recipient in the outbox, with the dedupe key kind:launch:customer, so
starting it twice, or for two audiences that overlap, tells nobody twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from customers.models import Campaign, Message
from customers.services.outbox import (
    OrderFacts,
    OutboxMessage,
    campaign_message_key,
    messages_enqueue,
    outbox_nudge,
)
from inventory.models import Launch

# Which kinds head office may send to which audience. A back-in-stock note to customers
# who already wait in the queue would be wrong: they keep their place and hear when served.
CAMPAIGN_AUDIENCES: dict[str, tuple[str, ...]] = {
    Message.Kind.APOLOGY: (Campaign.Audience.WAITLISTED, Campaign.Audience.REGISTERED_WITHOUT_ORDER),
    Message.Kind.BACK_IN_STOCK: (Campaign.Audience.REGISTERED_WITHOUT_ORDER,),
}


class CampaignNotAllowed(ValueError):
    """This kind of message cannot go to this audience."""


class CampaignHasNoRecipients(ValueError):
    """Nobody is in the audience: a campaign to no one is not started (it would read as
    finished at once, which says nothing true)."""


@dataclass(frozen=True)
class CampaignRecipient:
    """One customer of an audience, with the order the email is about (if any) as it is now."""

    customer_id: int
    order: OrderFacts | None = None


def campaign_check(*, kind: str, audience: str) -> None:
    if audience not in CAMPAIGN_AUDIENCES.get(kind, ()):
        raise CampaignNotAllowed(f"A {kind} campaign cannot go to {audience}.")


def campaign_start(
    *,
    launch: Launch,
    kind: str,
    audience: str,
    recipients: Iterable[CampaignRecipient],
    started_by: User | None = None,
    automatic: bool = False,
) -> Campaign:
    """Start (or re-start) a campaign: queue one message per recipient.

    Safe to call again and from several places at once: the Campaign row is unique per
    (launch, kind, audience) and every message is deduplicated per customer, so a second
    start only reaches customers who joined the audience since. Sending begins after
    commit. Refused (CampaignHasNoRecipients) when the audience is empty.
    """
    campaign_check(kind=kind, audience=audience)
    recipients = list(recipients)
    if not recipients:
        raise CampaignHasNoRecipients("Nobody is in this audience now: there is no one to send it to.")
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
        messages_enqueue(
            messages=[
                OutboxMessage(
                    kind=kind,
                    dedupe_key=campaign_message_key(
                        kind=kind, launch_id=launch.pk, customer_id=r.customer_id
                    ),
                    customer_id=r.customer_id,
                    launch_id=launch.pk,
                    campaign_id=campaign.pk,
                    order_reference=r.order.reference if r.order is not None else "",
                    context=r.order.context() if r.order is not None else {},
                )
                for r in recipients
            ]
        )
        campaign.queued = campaign.messages.count()
        campaign.save(update_fields=["queued"])
        outbox_nudge()
    return campaign
