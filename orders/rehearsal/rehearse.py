"""One rehearsal from start to report, shared by `simulate_launch` and the Celery task."""

from __future__ import annotations

import datetime
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.urls import reverse
from django.utils import timezone

from config.asyncrun import run_to_completion
from config.metrics import multiprocess_dir
from customers.models import Message, UpgradeRegistration
from inventory.models import Launch
from inventory.services.launch_window import launch_opening_set
from orders.models import Order
from orders.rehearsal.agreement import agreement, database_counts, simulator_counts
from orders.rehearsal.arrivals import Shape
from orders.rehearsal.crowd import Behaviour, Customer
from orders.rehearsal.driver import Crowd, Target, run_in_thread, walkins_run
from orders.rehearsal.report import render_html, summarise
from orders.rehearsal.sampler import Sampler, metrics_scrape
from orders.selectors.fairness import launch_fairness
from orders.services.allocation import launch_allocate
from orders.services.catalogue import CATALOGUE_SECONDS
from stores.models import Partner, PartnerAPIKey, Store

DRAIN_SECONDS = 60.0
# The run's emails are sent by the stack's workers after the allocator: the last scrape
# waits for them, so its email counter and the outbox rows agree. A 60 s launch leaves
# ~50,000 emails, more than a minute of sending on two cores, so the wait is as long as
# sending goes on (at most OUTBOX_SETTLE_SECONDS), and gives up once none has been sent
# for OUTBOX_STALLED_SECONDS (a stack whose mail goes nowhere).
OUTBOX_SETTLE_SECONDS = 600.0
OUTBOX_STALLED_SECONDS = 30.0


@dataclass(frozen=True)
class Options:
    url: str
    launch: str
    duration: float = 60.0
    peak_rate: float = 200.0
    opens_after: float | None = None  # seconds of pre-open trickle; a tenth of the run by default
    show_up: float = 0.6
    jitter: bool = True
    fair_start: int | None = None
    walk_ins: bool = True
    partner: str | None = None  # the partner whose keys send the orders; the first retail one by default
    seed: int = 1
    capacity: float | None = None  # admissions/s measured beforehand, to state the spike against

    def as_dict(self) -> dict:
        return dict(vars(self))


def customers_waiting(*, launch: Launch, partner: Partner, rng: random.Random) -> list[Customer]:
    """Registered customers without an order yet, shuffled: the morning's possible crowd."""
    partner_stores = set(Store.objects.filter(partner=partner).values_list("pk", flat=True))
    ordered = Order.objects.filter(launch=launch).values("customer_id")
    rows = (
        UpgradeRegistration.objects.filter(launch=launch)
        .exclude(customer_id__in=ordered)
        .values_list(
            "customer__account_number",
            "customer__postcode",
            "preferred_sku__code",
            "preferred_store_id",
            "preferred_store__code",
        )
    )
    people = [
        Customer(account=a, postcode=p, sku=sku, store=code if store_id in partner_stores else None)
        for a, p, sku, store_id, code in rows
    ]
    rng.shuffle(people)
    return people


def partner_keys(*, partner: Partner, run_id: str) -> tuple[str, str]:
    """Two fresh order keys: the storefront's and the back office's bulk, each its own rate limit."""
    made = [
        PartnerAPIKey.objects.create_key(
            name=f"rehearsal {run_id} {use}", partner=partner, scope=PartnerAPIKey.Scope.ORDERS
        )[1]
        for use in ("storefront", "bulk")
    ]
    return made[0], made[1]


def allocator_drained(*, launch: Launch, since: datetime.datetime, timeout: float) -> tuple[float, int]:
    """Seconds until no order of this run is still queued (the allocator has caught up), and
    the orders this process's own allocator calls moved (the stack's /metrics may not count
    them: orders.rehearsal.agreement)."""
    started = asked = time.monotonic()
    moved = 0
    while time.monotonic() - started < timeout:
        if not Order.objects.filter(
            launch=launch, created_at__gte=since, status=Order.Status.QUEUED
        ).exists():
            break
        if time.monotonic() - asked > 2.0:
            # Admission's nudges are coalesced and beat's one-second run is the safety net;
            # a stack without beat (the tests') would keep its last stragglers queued. The
            # allocator is safe beside the stack's own: it takes the launch's lock.
            result = launch_allocate(launch_id=launch.pk)
            moved += result.allocated + result.waitlisted
            asked = time.monotonic()
        time.sleep(0.25)
    return time.monotonic() - started, moved


def outbox_settled(
    *, since: datetime.datetime, timeout: float, stalled_after: float = OUTBOX_STALLED_SECONDS
) -> tuple[float, bool]:
    """Seconds until no email of this run waits to be sent, and whether that happened: it
    waits while emails are still going out, up to `timeout`, and no longer than
    `stalled_after` once none has gone."""
    started = progressed = time.monotonic()
    run_emails = Message.objects.filter(created_at__gte=since)
    waiting = run_emails.filter(status__in=(Message.Status.PENDING, Message.Status.SENDING))
    sent = run_emails.filter(status=Message.Status.SENT).count()
    while waiting.exists():
        now = time.monotonic()
        if now - started > timeout or now - progressed > stalled_after:
            return now - started, False
        time.sleep(0.5)
        if (sent_now := run_emails.filter(status=Message.Status.SENT).count()) != sent:
            sent, progressed = sent_now, time.monotonic()
    return time.monotonic() - started, True


def fairness_audit(*, launch: Launch, url: str) -> dict:
    """The fairness audit head office's page shows (orders.selectors.fairness), as JSON."""
    launch.refresh_from_db()
    audit = launch_fairness(launch=launch)
    return {
        "violations": audit.violations,
        "checks": [
            {"name": c.name, "title": c.title, "looked_at": c.looked_at, "violations": c.violations}
            for c in audit.checks
        ],
        "pools": len(audit.pools),
        "positions_unrecorded": audit.positions_unrecorded,
        "fair_start_seconds": audit.fair_start_seconds,
        "page": url.rstrip("/") + reverse("launch-fairness", kwargs={"slug": launch.slug}),
    }


def stack_preflight(*, url: str) -> None:
    """Refuse to start a crowd the stack cannot answer: without this, a stack that redirects
    plain HTTP to HTTPS (production's SECURE_SSL_REDIRECT) turns minutes of rehearsal into
    nothing but "unanswered" requests, and its report into zeros."""
    orders = url.rstrip("/") + reverse("api-orders")
    try:
        answer = httpx.post(orders, json={}, timeout=5, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ValueError(f"Nothing answers at {url} ({type(exc).__name__}): is the stack running?") from exc
    if answer.is_redirect:
        raise ValueError(
            f"{orders} redirects to {answer.headers.get('location', '?')}: the rehearsal speaks plain "
            "HTTP on loopback, so serve the stack with SECURE_SSL_REDIRECT=0 (docs/operations.md)."
        )
    if answer.status_code >= 500 or "json" not in answer.headers.get("content-type", ""):
        raise ValueError(
            f"{orders} answered {answer.status_code} without the API's JSON envelope: is it Launchday?"
        )


def rehearse(options: Options, *, progress: Callable[[dict], None] | None = None) -> tuple[dict, str]:
    """Run the morning against `options.url`; returns the report as JSON-ready data and as HTML."""
    stack_preflight(url=options.url)
    rng = random.Random(options.seed)
    run_id = uuid.uuid4().hex[:8]
    launch = Launch.objects.get(slug=options.launch)
    partner = (
        Partner.objects.get(code=options.partner)
        if options.partner
        else Partner.objects.filter(is_active=True, kind=Partner.Kind.RETAILER).order_by("code").first()
    )
    if partner is None:
        raise ValueError("No active retail partner to send orders with.")
    key, bulk_key = partner_keys(partner=partner, run_id=run_id)
    registered = UpgradeRegistration.objects.filter(launch=launch).count()
    customers = customers_waiting(launch=launch, partner=partner, rng=rng)
    opens_after = options.opens_after if options.opens_after is not None else round(options.duration / 10, 1)
    shape = Shape(
        duration=options.duration,
        opens_after=opens_after,
        peak_rate=options.peak_rate,
        crowd=min(registered * options.show_up, len(customers)),
    )
    behaviour = Behaviour(show_up=options.show_up, jitter=options.jitter)
    target = Target(
        url=options.url,
        launch=launch.slug,
        key=key,
        bulk_key=bulk_key,
        stores=tuple(Store.objects.filter(partner=partner).values_list("code", flat=True)),
    )
    # Every server process reads the launch's window from a cache of CATALOGUE_SECONDS:
    # move the opening, then wait that long, so the pre-open trickle meets a closed launch.
    settle = CATALOGUE_SECONDS + 0.5
    since = timezone.now()
    launch_opening_set(
        launch=launch,
        opens_at=since + datetime.timedelta(seconds=settle + opens_after),
        fair_start_seconds=options.fair_start,
    )
    time.sleep(settle)
    metrics_before = metrics_scrape(options.url)
    crowd = Crowd(
        target=target,
        shape=shape,
        behaviour=behaviour,
        customers=customers,
        seed=options.seed,
        run_id=run_id,
        progress=progress,
    )
    started = time.monotonic()
    sampler = Sampler(launch_id=launch.pk, since=since, started=started, metrics_url=options.url)
    sampler.start()
    walkins = None
    if options.walk_ins:
        # The stores open two (rehearsal) seconds after the website, as 08:02 follows 08:00.
        walkins = run_in_thread(
            walkins_run, launch_id=launch.pk, opens_at=opens_after + 2.0, started=started, behaviour=behaviour
        )
    try:
        run = run_to_completion(crowd.go())
    finally:
        drained_after, own_moves = allocator_drained(launch=launch, since=since, timeout=DRAIN_SECONDS)
        samples = sampler.stop()
    mornings = []
    if walkins is not None:
        walkins[0].join(timeout=120)
        mornings = walkins[1][0] if walkins[1] else []
    settled_after, settled = outbox_settled(since=since, timeout=OUTBOX_SETTLE_SECONDS)
    metrics_after = metrics_scrape(options.url)
    compared = agreement(
        before=metrics_before,
        after=metrics_after,
        scrapes=sampler.scrapes,
        database=database_counts(launch=launch, since=since),
        simulator=simulator_counts(run.people),
        # This process's allocator calls count into the stack's files only when it shares
        # them (the rehearsal run by the stack's own Celery worker, under make serve).
        own_allocator_moves=0 if multiprocess_dir() else own_moves,
        outbox_settled=settled,
    )
    compared["outbox_settled_after"] = round(settled_after, 2)
    summary = summarise(
        crowd=run,
        samples=samples,
        mornings=mornings,
        launch=launch,
        since=since,
        shape=shape,
        behaviour=behaviour,
        options=options.as_dict(),
        metrics_agreement=compared,
        audit=fairness_audit(launch=launch, url=options.url),
    )
    summary["registrations"] = registered
    summary["allocator_drained_after"] = round(drained_after, 2)
    summary["metrics"] = (
        {"before": metrics_before, "after": metrics_after} if metrics_after is not None else "not answering"
    )
    summary["run_id"] = run_id
    summary["started_at"] = since.isoformat()
    return summary, render_html(summary)
