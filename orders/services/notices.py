"""Stock notices: freed units offered in registration order, held for a claim window.

When units come free in a pool (a delivery intake, a cancellation, an expired
collection, a window that closed) the allocator first serves the pool's waitlist. What is
still free then is offered to the registered customers without an order who chose that
pool, earliest registration first, at most free x the launch's notice_factor of them, and
held for them until the window closes: the hold is a reservation in the ledger (HOLD),
so nobody else is allocated or sold a held unit, and available = on_hand - reserved
stays the one rule everywhere. Among the notified, claims are first come first served:
a conditional UPDATE raises the window's `claimed` only while it is below `units`. When
the window closes, what nobody claimed is RELEASEd, the waitlist that formed meanwhile is
served first, and the rest goes to the next customers in registration order.

Who was told is a row per customer (StockNotice, unique per launch and customer) and its
email is written in the same statement (customers' stock_notices_enqueue), so a
repeated trigger tells nobody twice and a told customer always gets the email.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
import math
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.models import Customer, Message, UpgradeRegistration
from customers.services.outbox import (
    OutboxMessage,
    claim_token_read,
    messages_enqueue,
    outbox_nudge,
    stock_notice_key,
    stock_notices_enqueue,
)
from customers.services.registration import eligible_customer
from inventory.models import Launch, Location, Stock, StockMovement
from inventory.services import StockChange, stock_apply, stock_rows_for_update
from orders.models import ClaimWindow, Order, StockNotice
from orders.services.admission import AdmissionRefused, order_route, references_new
from orders.services.allocation import launch_allocate
from orders.services.catalogue import launch_catalogue
from orders.services.locks import allocator_lock
from orders.services.order_emails import order_email_enqueue

logger = logging.getLogger(__name__)

# Sent by name: the task module is an entry point this core must not import.
SERVE_FREED_TASK = "orders.tasks.serve_freed_units"
SERVE_FREED_NUDGE_SECONDS = 1

WAITING = (Order.Status.QUEUED, Order.Status.WAITLISTED)


# --- Opening windows ----------------------------------------------------------------------

# The pool's next customers in registration order, told in one statement with their email
# (customers.services.outbox.stock_notices_enqueue makes it the CTE of the outbox INSERT).
# A customer with any order in the launch (even cancelled: its slot is taken), one already
# told, one who may not upgrade or who unsubscribed (the notice is marketing-type mail and
# would be suppressed while a unit is held for it) is passed over.
_NOTICES_INSERT = """
  INSERT INTO orders_stocknotice (window_id, launch_id, customer_id, rank, order_id, claimed_at)
  SELECT %(window)s, %(launch)s, p.customer_id, p.rank, NULL, NULL FROM (
    SELECT r.customer_id, row_number() OVER (ORDER BY r.registered_at, r.id) AS rank
    FROM customers_upgraderegistration r JOIN customers_customer c ON c.id = r.customer_id
    WHERE r.launch_id = %(launch)s AND r.preferred_sku_id = %(sku)s
      AND r.preferred_store_id IS NOT DISTINCT FROM %(store)s
      AND c.contract_status IN ('active', 'upgrade_due') AND NOT c.marketing_opt_out
      AND NOT EXISTS (SELECT 1 FROM orders_order o
                      WHERE o.launch_id = r.launch_id AND o.customer_id = r.customer_id)
      AND NOT EXISTS (SELECT 1 FROM orders_stocknotice n
                      WHERE n.launch_id = r.launch_id AND n.customer_id = r.customer_id)
    ORDER BY r.registered_at, r.id LIMIT %(limit)s
  ) p
  ON CONFLICT DO NOTHING
  RETURNING id AS notice_id, window_id, customer_id, launch_id, %(sku)s::bigint AS sku_id,
    %(store)s::bigint AS store_id, %(closes_at)s::timestamptz AS closes_at
"""


@dataclass
class NoticeResult:
    windows: int = 0
    notified: int = 0
    held: int = 0


def launch_free_units_serve(*, launch_id: int, now: datetime.datetime | None = None) -> NoticeResult:
    """Units came free in the launch: serve waiting orders first, then offer the rest."""
    launch_allocate(launch_id=launch_id)
    return stock_notices_open(launch_id=launch_id, now=now)


def stock_notices_open(*, launch_id: int, now: datetime.datetime | None = None) -> NoticeResult:
    """Open a claim window on every pool of the launch with free units and nobody waiting.

    Under the allocator lock and the pools' stock row locks, so no allocation, walk-in
    sale or other opening moves the units between counting and holding them. Nothing
    happens outside the launch's ordering window, or with a notice factor of 0.
    """
    now = now or timezone.now()
    result = NoticeResult()
    launch = Launch.objects.only("opens_at", "closes_at", "notice_factor", "claim_window_minutes").get(
        pk=launch_id
    )
    if not launch.is_open_at(now) or launch.notice_factor <= 0:
        return result
    closes_at = min(now + datetime.timedelta(minutes=launch.claim_window_minutes), launch.closes_at)
    with transaction.atomic():
        allocator_lock(launch_id=launch_id)
        free = list(
            Stock.objects.filter(
                sku__launches=launch_id,
                on_hand__gt=F("reserved"),
                location__kind__in=[Location.Kind.ONLINE, Location.Kind.STORE],
            ).values_list("location_id", "sku_id")
        )
        if not free:
            return result
        stock = stock_rows_for_update(pairs=free)
        waiting = set(
            Order.objects.filter(launch_id=launch_id, status__in=WAITING, pool_id__in={p for p, _ in free})
            .values_list("pool_id", "sku_id")
            .distinct()
        )
        stores = dict(Location.objects.filter(pk__in={p for p, _ in free}).values_list("pk", "store_id"))
        for (pool_id, sku_id), row in sorted(stock.items()):
            units = row.on_hand - row.reserved
            # Orders still waiting here are served by the allocator's next run, not passed over.
            if units <= 0 or (pool_id, sku_id) in waiting:
                continue
            limit = math.floor(units * launch.notice_factor)
            if limit <= 0:
                continue
            window = ClaimWindow.objects.create(
                launch_id=launch_id, sku_id=sku_id, pool_id=pool_id, opened_at=now, closes_at=closes_at
            )
            told = _notices_write(window=window, store_id=stores.get(pool_id), limit=limit)
            if not told:
                window.delete()  # nobody left to tell: the units stay free for everyone
                continue
            held = min(units, told)
            ClaimWindow.objects.filter(pk=window.pk).update(units=held, notified=told)
            stock_apply(
                changes=[
                    StockChange(
                        location=row.location,
                        sku=row.sku,
                        kind=StockMovement.Kind.HOLD,
                        reserved_delta=held,
                        reason=f"Held for {told} notified customers until {closes_at:%Y-%m-%d %H:%M}",
                        reference=f"claim-window:{window.pk}",
                    )
                ]
            )
            result.windows += 1
            result.notified += told
            result.held += held
        if result.notified:
            outbox_nudge()
    if result.windows:
        logger.info("stock notices for launch %s: %s", launch_id, result)
    return result


def _notices_write(*, window: ClaimWindow, store_id: int | None, limit: int) -> int:
    """Tell the window's pool's next `limit` customers, with their emails; returns how many."""
    if connection.vendor == "postgresql":
        return stock_notices_enqueue(
            source=_NOTICES_INSERT,
            params={
                "window": window.pk,
                "launch": window.launch_id,
                "sku": window.sku_id,
                "store": store_id,
                "limit": limit,
                "closes_at": window.closes_at,
            },
        )
    # The embedded default (SQLite): the same choice through the ORM, row by row.
    customers = list(
        UpgradeRegistration.objects.filter(
            launch_id=window.launch_id,
            preferred_sku_id=window.sku_id,
            preferred_store_id=store_id,
            customer__contract_status__in=[
                Customer.ContractStatus.ACTIVE,
                Customer.ContractStatus.UPGRADE_DUE,
            ],
            customer__marketing_opt_out=False,
        )
        .exclude(customer_id__in=Order.objects.filter(launch_id=window.launch_id).values("customer_id"))
        .exclude(customer_id__in=StockNotice.objects.filter(launch_id=window.launch_id).values("customer_id"))
        .order_by("registered_at", "pk")
        .values_list("customer_id", flat=True)[:limit]
    )
    notices = StockNotice.objects.bulk_create(
        [
            StockNotice(window=window, launch_id=window.launch_id, customer_id=customer_id, rank=rank)
            for rank, customer_id in enumerate(customers, start=1)
        ]
    )
    messages_enqueue(
        messages=[
            OutboxMessage(
                kind=Message.Kind.STOCK_NOTICE,
                dedupe_key=stock_notice_key(window_id=window.pk, customer_id=n.customer_id),
                customer_id=n.customer_id,
                launch_id=window.launch_id,
                context={
                    "notice": n.pk,
                    "sku": window.sku_id,
                    "store": store_id,
                    "closes_at": window.closes_at.isoformat(),
                },
            )
            for n in notices
        ]
    )
    return len(notices)


def free_units_nudge(*, launch_id: int) -> None:
    """After a unit came free (a cancellation): serve the pool's waitlist, then notify.

    Coalesced like the allocator's nudge; a lost nudge leaves the unit free for anyone
    to order (the allocator's safety net still serves waiting orders), never held.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        launch_free_units_serve(launch_id=launch_id)
        return
    try:
        if cache.add(f"free-units-pending:{launch_id}", 1, timeout=SERVE_FREED_NUDGE_SECONDS):
            current_app.send_task(SERVE_FREED_TASK, args=[launch_id])
    except Exception:  # a hint only
        logger.warning("freed-units nudge for launch %s not sent", launch_id, exc_info=True)


# --- Claiming -----------------------------------------------------------------------------


class ClaimProblem(enum.Enum):
    """Why a claim changed nothing."""

    TAMPERED = "tampered"
    EXPIRED = "expired"
    GONE = "gone"
    ALREADY_ORDERED = "already_ordered"
    NOT_ELIGIBLE = "not_eligible"

    @property
    def http_status(self) -> int:
        """The status of the page that says so."""
        return _CLAIM_STATUS[self]


_CLAIM_STATUS = {
    ClaimProblem.TAMPERED: 400,
    ClaimProblem.EXPIRED: 410,
    ClaimProblem.GONE: 409,
    ClaimProblem.ALREADY_ORDERED: 409,
    ClaimProblem.NOT_ELIGIBLE: 403,
}


class ClaimRefused(Exception):
    def __init__(self, problem: ClaimProblem, message: str, *, reference: str | None = None):
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.reference = reference


@dataclass(frozen=True)
class ClaimOffer:
    """What a valid claim link offers, for the page that shows it."""

    notice: StockNotice
    window: ClaimWindow
    left: int


def _notice_for(token: str, now: datetime.datetime) -> StockNotice:
    link = claim_token_read(token=token)
    if link is None:
        raise ClaimRefused(
            ClaimProblem.TAMPERED, "This link is not one we sent, or it was changed on the way."
        )
    # Two joins only: PostgreSQL plans a six-table join in about 3 ms, longer than the
    # claim's whole transaction; the SKU, pool and launch are pk lookups when read.
    notice = StockNotice.objects.select_related("window", "customer").filter(pk=link.notice_id).first()
    if notice is None:
        raise ClaimRefused(ClaimProblem.EXPIRED, "This offer no longer exists.")
    if notice.order_id is not None:
        reference = Order.objects.filter(pk=notice.order_id).values_list("reference", flat=True).first()
        raise ClaimRefused(
            ClaimProblem.ALREADY_ORDERED, "You have already ordered with this link.", reference=reference
        )
    window = notice.window
    if window.status != ClaimWindow.Status.OPEN or window.closes_at <= now or link.expires_at <= now:
        raise ClaimRefused(
            ClaimProblem.EXPIRED,
            f"This offer ended at {timezone.localtime(window.closes_at):%H:%M on %d %B}; "
            "phones nobody ordered have gone to the next customers.",
        )
    return notice


def stock_notice_offer(*, token: str, now: datetime.datetime | None = None) -> ClaimOffer:
    """The offer behind a claim link, or ClaimRefused; reads only."""
    notice = _notice_for(token, now or timezone.now())
    window = notice.window
    return ClaimOffer(notice=notice, window=window, left=window.units - window.claimed)


def stock_notice_claim(*, token: str, now: datetime.datetime | None = None) -> Order:
    """Turn one held unit into the notified customer's allocated upgrade order.

    First come first served among the notified: the window's `claimed` rises by a
    conditional UPDATE that never passes `units`, so however many claim at once no more
    orders are placed than units were held. The order is the journey's (its route and
    eligibility checks, one order per customer by the unique slot) but allocated at once:
    its unit was reserved when the window opened. Raises ClaimRefused, changing nothing.
    """
    now = now or timezone.now()
    return _claim(_notice_for(token, now), now)


def stock_notice_held_for(
    *, launch_id: int, customer_id: int, sku_id: int, pool_id: int, now: datetime.datetime | None = None
) -> StockNotice | None:
    """The customer's notice whose window still holds a unit for exactly this order, if any.

    So the order form honours the link: a notified customer who orders the held SKU from
    the held pool through the form is served from the hold, not queued behind it.
    """
    return (
        StockNotice.objects.select_related(
            "window", "window__sku", "window__pool__store", "launch", "customer"
        )
        .filter(
            launch_id=launch_id,
            customer_id=customer_id,
            order__isnull=True,
            window__sku_id=sku_id,
            window__pool_id=pool_id,
            window__status=ClaimWindow.Status.OPEN,
            window__closes_at__gt=now or timezone.now(),
        )
        .first()
    )


def stock_notice_claim_held(*, notice: StockNotice, now: datetime.datetime | None = None) -> Order:
    """stock_notice_claim for a notice the caller found (stock_notice_held_for) rather than
    read from a link; the same checks and the same first come first served UPDATE."""
    return _claim(notice, now or timezone.now())


def _claim(notice: StockNotice, now: datetime.datetime) -> Order:
    window = notice.window
    launch = notice.launch
    cat = launch_catalogue(slug=launch.slug)
    store = window.pool.store
    fulfilment = Order.Fulfilment.COLLECT if store is not None else Order.Fulfilment.DELIVERY
    if cat is None:
        raise ClaimRefused(ClaimProblem.EXPIRED, "This launch no longer takes orders.")
    try:
        order_route(
            cat=cat,
            sku=window.sku.code,
            fulfilment=fulfilment,
            store=store.code if store is not None else None,
            partner_id=None,
            now=now,
        )
    except AdmissionRefused as refused:
        raise ClaimRefused(ClaimProblem.EXPIRED, refused.message) from None
    if eligible_customer(launch_id=launch.pk, account_number=notice.customer.account_number) is None:
        raise ClaimRefused(ClaimProblem.NOT_ELIGIBLE, "This account can't be upgraded at the moment.")
    with transaction.atomic():
        # One claim per notice at a time: a double click waits here and then sees the order.
        locked = StockNotice.objects.select_for_update().get(pk=notice.pk)
        if (
            locked.order_id is not None
            or Order.objects.filter(launch_id=launch.pk, customer_id=notice.customer_id).exists()
        ):
            raise ClaimRefused(ClaimProblem.ALREADY_ORDERED, "You already have an order for this launch.")
        taken = ClaimWindow.objects.filter(
            Q(claimed__lt=F("units")), pk=window.pk, status=ClaimWindow.Status.OPEN, closes_at__gt=now
        ).update(claimed=F("claimed") + 1)
        if not taken:
            window.refresh_from_db()
            if window.status != ClaimWindow.Status.OPEN or window.closes_at <= now:
                raise ClaimRefused(ClaimProblem.EXPIRED, "This offer has just ended.")
            raise ClaimRefused(
                ClaimProblem.GONE,
                f"All {window.units} phones held for this offer have been ordered by customers who "
                "answered sooner. Nothing was ordered and nothing was charged.",
            )
        order = Order(
            reference=references_new(1)[0],
            launch_id=launch.pk,
            customer_id=notice.customer_id,
            slot=1,
            sku_id=window.sku_id,
            channel=Order.Channel.ONLINE,
            fulfilment=fulfilment,
            store=store,
            pool_id=window.pool_id,
            status=Order.Status.ALLOCATED,
            created_at=now,
            allocated_at=now,
            collect_by=now + datetime.timedelta(days=launch.collect_hold_days) if store is not None else None,
        )
        try:
            with transaction.atomic():
                order.save(force_insert=True)
        except IntegrityError:  # an order placed through the form a moment ago
            raise ClaimRefused(
                ClaimProblem.ALREADY_ORDERED, "You already have an order for this launch."
            ) from None
        StockNotice.objects.filter(pk=notice.pk).update(order=order, claimed_at=now)
        order_email_enqueue(order=order, kind=Message.Kind.ALLOCATED)
    return order


# --- Closing windows ----------------------------------------------------------------------


def claim_windows_expire(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Close windows past their end: unclaimed units go back to the pool, the waitlist
    that formed meanwhile is served, and the rest is offered to the next customers.
    Safe to run at any time and twice. Returns how many windows closed."""
    now = now or timezone.now()
    due = list(
        ClaimWindow.objects.filter(status=ClaimWindow.Status.OPEN, closes_at__lte=now)
        .order_by("closes_at", "pk")
        .values_list("pk", "launch_id")[:limit]
    )
    launches: set[int] = set()
    closed = 0
    for pk, launch_id in due:
        with transaction.atomic():
            allocator_lock(launch_id=launch_id)
            window = (
                ClaimWindow.objects.select_for_update()
                .select_related("pool", "sku")
                .filter(pk=pk, status=ClaimWindow.Status.OPEN)
                .first()
            )
            if window is None:  # closed by another run meanwhile
                continue
            window.status = ClaimWindow.Status.CLOSED
            window.closed_at = now
            window.save(update_fields=["status", "closed_at"])
            unclaimed = window.units - window.claimed
            if unclaimed:
                stock_apply(
                    changes=[
                        StockChange(
                            location=window.pool,
                            sku=window.sku,
                            kind=StockMovement.Kind.RELEASE,
                            reserved_delta=-unclaimed,
                            reason="Claim window closed: unclaimed units back to the pool",
                            reference=f"claim-window:{window.pk}",
                        )
                    ]
                )
        closed += 1
        launches.add(launch_id)
    for launch_id in sorted(launches):
        with contextlib.suppress(Launch.DoesNotExist):
            launch_free_units_serve(launch_id=launch_id, now=now)
    return closed
