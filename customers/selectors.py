"""Reads for head office's customer and campaign pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Min, Q, QuerySet

from config.metrics import Backlog
from customers.models import Campaign, Customer, Message, UpgradeRegistration


@dataclass
class CampaignProgress:
    total: int
    pending: int
    sending: int
    sent: int
    failed: int
    suppressed: int

    @property
    def queued(self) -> int:
        return self.pending + self.sending

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.suppressed

    @property
    def percent(self) -> int:
        # A campaign with no message (recorded before empty audiences were refused) has
        # done nothing: 0 %, not a full bar.
        return 0 if self.total == 0 else int(100 * self.done / self.total)

    @property
    def finished(self) -> bool:
        return self.queued == 0


def campaign_progress(*, campaign: Campaign) -> CampaignProgress:
    counts = dict(campaign.messages.values_list("status").annotate(n=Count("id")).order_by())
    return CampaignProgress(
        total=sum(counts.values()),
        **{status: counts.get(status, 0) for status in Message.Status.values},
    )


def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("launch", "started_by").order_by("-started_at")


def customer_search(*, query: str, limit: int = 50) -> QuerySet[Customer]:
    """Customers by account number, email or name (exact account number first)."""
    query = query.strip()
    if not query:
        return Customer.objects.none()
    return Customer.objects.filter(
        Q(account_number__iexact=query) | Q(email__iexact=query) | Q(name__icontains=query)
    ).order_by("account_number")[:limit]


def customer_registrations(*, customer: Customer):
    return customer.registrations.select_related("launch", "preferred_sku", "preferred_store").order_by(
        "-registered_at"
    )


def customer_messages(*, customer: Customer):
    return customer.messages.select_related("launch", "campaign").order_by("-created_at", "-id")


def outbox_backlog() -> Backlog:
    """Email waiting to go (pending, or claimed by a sender and not yet sent) and the
    oldest one's age, the figure that says whether the senders keep up on the morning."""
    waiting = Message.objects.filter(status__in=(Message.Status.PENDING, Message.Status.SENDING))
    figures = waiting.aggregate(n=Count("pk"), oldest=Min("created_at"))
    return Backlog(waiting=figures["n"], oldest_at=figures["oldest"])


def outbox_failed_count() -> int:
    """Email given up on (OUTBOX_MAX_ATTEMPTS spent or refused for good)."""
    return Message.objects.filter(status=Message.Status.FAILED).count()


def order_messages(*, customer_id: int, reference: str) -> QuerySet[Message]:
    """Every email about one order, oldest first (through message_customer: a customer's
    handful of rows, then the reference)."""
    return Message.objects.filter(customer_id=customer_id, order_reference=reference).order_by(
        "created_at", "id"
    )


def registrations_by_preference(*, launch_id: int) -> dict[tuple[int | None, int], int]:
    """(preferred store id, None for home delivery; preferred SKU id) -> the launch's
    registrations."""
    return count_by_preference(registrations=UpgradeRegistration.objects.filter(launch_id=launch_id))


def count_by_preference(*, registrations: QuerySet[UpgradeRegistration]) -> dict[tuple[int | None, int], int]:
    """(preferred store id, None for home delivery; preferred SKU id) -> how many of
    `registrations`. COUNT(*), not of a column: PostgreSQL then counts from an index of
    the registrations alone (registration_demand, registration_by_customer), half the time
    of reading every registration."""
    rows = (
        registrations.values_list("preferred_store_id", "preferred_sku_id").annotate(n=Count("*")).order_by()
    )
    return {(store_id, sku_id): n for store_id, sku_id, n in rows}
