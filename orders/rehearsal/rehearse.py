"""One rehearsal from start to report, shared by `simulate_launch` and the Celery task."""

from __future__ import annotations

import datetime
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from config.asyncrun import run_to_completion
from customers.models import UpgradeRegistration
from inventory.models import Launch
from inventory.services.launch_window import launch_opening_set
from orders.models import Order
from orders.rehearsal.arrivals import Shape
from orders.rehearsal.crowd import Behaviour, Customer
from orders.rehearsal.driver import Crowd, Target, run_in_thread, walkins_run
from orders.rehearsal.report import render_html, summarise
from orders.rehearsal.sampler import Sampler, metrics_scrape
from orders.services.allocation import launch_allocate
from orders.services.catalogue import CATALOGUE_SECONDS
from stores.models import Partner, PartnerAPIKey, Store

DRAIN_SECONDS = 60.0


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


def allocator_drained(*, launch: Launch, since: datetime.datetime, timeout: float) -> float:
    """Seconds until no order of this run is still queued (the allocator has caught up)."""
    started = asked = time.monotonic()
    while time.monotonic() - started < timeout:
        if not Order.objects.filter(
            launch=launch, created_at__gte=since, status=Order.Status.QUEUED
        ).exists():
            break
        if time.monotonic() - asked > 2.0:
            # Admission's nudges are coalesced and beat's one-second run is the safety net;
            # a stack without beat (the tests') would keep its last stragglers queued. The
            # allocator is safe beside the stack's own: it takes the launch's lock.
            launch_allocate(launch_id=launch.pk)
            asked = time.monotonic()
        time.sleep(0.25)
    return time.monotonic() - started


def rehearse(options: Options, *, progress: Callable[[dict], None] | None = None) -> tuple[dict, str]:
    """Run the morning against `options.url`; returns the report as JSON-ready data and as HTML."""
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
    sampler = Sampler(launch_id=launch.pk, since=since, started=started)
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
        drained_after = allocator_drained(launch=launch, since=since, timeout=DRAIN_SECONDS)
        samples = sampler.stop()
    mornings = []
    if walkins is not None:
        walkins[0].join(timeout=120)
        mornings = walkins[1][0] if walkins[1] else []
    metrics_after = metrics_scrape(options.url)
    summary = summarise(
        crowd=run,
        samples=samples,
        mornings=mornings,
        launch=launch,
        since=since,
        shape=shape,
        behaviour=behaviour,
        options=options.as_dict(),
    )
    summary["registrations"] = registered
    summary["allocator_drained_after"] = round(drained_after, 2)
    summary["metrics"] = (
        {"before": metrics_before, "after": metrics_after} if metrics_after is not None else "not answering"
    )
    summary["run_id"] = run_id
    summary["started_at"] = since.isoformat()
    return summary, render_html(summary)
