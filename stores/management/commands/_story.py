"""`seed_demo --story`: the first hour of the launch, already lived, through the app's services.

Orders arrive over the hour (a spike at opening, then a decaying tail) through bulk
admission with `now=` set to their moment, so sequence numbers follow time; the allocator
serves them first come, first served; walk-ins take tickets and buy what the stores have
free; some collect orders are handed over and a few are left past their collect-by time;
the supplier announces next week's delivery and head office has a draft plan for it; the
apology went out to the waitlist; a second launch takes registrations.

Nothing here writes an order, a stock level or a message itself: every change is a
service call (orders_admit_bulk, launch_allocate, ticket_issue/serve_next/pass_over,
order_collect, delivery_announce, delivery_plan_suggest, launch_campaign_start, the outbox
sender), so the story obeys the invariants the services guard. Only timestamps are moved
afterwards (tickets spread over the hour, a few collect deadlines put in the past).
"""

import datetime
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count
from django.test.utils import override_settings
from django.utils import timezone

from config.celery import app as celery_app
from customers.models import Campaign, Message, UpgradeRegistration
from customers.services.outbox import outbox_drain
from customers.services.registration import eligibility_cache_warm
from inventory.manifests import Manifest, ManifestLine
from inventory.models import SKU, Launch
from inventory.selectors import location_of_store, store_stock
from inventory.services import delivery_announce
from orders.models import Order, Ticket
from orders.selectors.availability import pool_waiting
from orders.services.admission import OrderRequest
from orders.services.allocation import launch_allocate
from orders.services.bulk import MAX_BULK_ITEMS, orders_admit_bulk
from orders.services.campaigns import launch_campaign_start
from orders.services.catalogue import catalogue_clear
from orders.services.collection import order_collect
from orders.services.intake import delivery_plan_suggest
from orders.services.walkin import ticket_issue, ticket_pass_over, ticket_serve_next
from stores.models import Partner, Store

SECOND_LAUNCH_SLUG = "iphone-3g-pay-and-go"
SECOND_LAUNCH_NAME = "iPhone 3G Pay & Go"
HOUR = 3600.0
# Orders in the same half minute are admitted together, as group commit would.
BUCKET_SECONDS = 30
# Delivery orders in the first hour, as a share of the customers who registered for home
# delivery of each model, and never fewer than these shares of the online pool: the most
# wanted model always sells out online and leaves a waitlist.
DELIVERY_SHARE = {"IP3G-16GB-BLACK": 0.08, "IP3G-8GB-BLACK": 0.06, "IP3G-16GB-WHITE": 0.05}
DELIVERY_MINIMUM = {"IP3G-16GB-BLACK": 1.4, "IP3G-8GB-BLACK": 0.8, "IP3G-16GB-WHITE": 0.55}
# Collect orders per store and model, as a share of the store's units: the 16GB black is
# owed to a waitlist in every store, the others leave units for walk-ins.
COLLECT_SHARE = {"IP3G-16GB-BLACK": 1.5, "IP3G-8GB-BLACK": 0.75, "IP3G-16GB-WHITE": 0.5}
# Walk-ins buy what is free, cheapest first.
WALK_IN_PREFERENCE = ("IP3G-8GB-BLACK", "IP3G-16GB-WHITE", "IP3G-16GB-BLACK")
SECOND_LAUNCH_REGISTERED = 0.1


@dataclass(frozen=True)
class Intent:
    """One customer's order as it will reach admission."""

    at: float  # seconds after the window opened
    account: str
    sku: str
    fulfilment: str
    store: str | None
    channel: str
    partner_id: int | None


@dataclass
class StorySummary:
    orders: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    tickets: Counter = field(default_factory=Counter)
    collected: int = 0
    overdue: int = 0
    delivery: str = ""
    apologies: int = 0
    second_launch_registrations: int = 0
    emails: int = 0

    def lines(self) -> list[str]:
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(self.orders.items()))
        refused = ", ".join(f"{n} {code}" for code, n in sorted(self.refused.items()))
        return [
            f"Story: {sum(self.orders.values())} orders over the last hour ({by_status}); "
            f"{sum(self.refused.values())} refused{f' ({refused})' if refused else ''}; "
            f"{self.collected} collected, {self.overdue} past their collect-by time.",
            f"Story: {self.tickets['issued']} walk-in tickets, {self.tickets['served']} sold, "
            f"{self.tickets['no_sale']} left without a unit, {self.tickets['waiting']} waiting.",
            f"Story: delivery {self.delivery} announced with a draft plan; apology sent to "
            f"{self.apologies} waiting customers; {self.second_launch_registrations} registered for "
            f"{SECOND_LAUNCH_NAME}; {self.emails} emails recorded as sent (not delivered while seeding).",
        ]


class Story:
    def __init__(
        self,
        *,
        launch: Launch,
        skus: list[SKU],
        stores: list[Store],
        partner: Partner,
        staff_by_store: dict[int, object],
        head_office,
        online_units: int,
        store_units: int,
        rng: random.Random,
    ):
        self.launch = launch
        self.skus = {s.code: s for s in skus}
        self.stores = stores
        self.partner = partner
        self.staff_by_store = staff_by_store
        self.head_office = head_office
        self.online_units = online_units
        self.store_units = store_units
        self.rng = rng
        self.summary = StorySummary()

    def run(self) -> StorySummary:
        # Everything runs in this process whatever the deployment: tasks eager, and the
        # story's email recorded as sent without reaching a mail server. Admission's
        # allocator nudges take the coalesced path (about one run a second), as under load.
        # (Celery's own switch first: its configuration is read from the settings the first
        # time it is touched, and must not be read while they are overridden.)
        with (
            _celery_eager(),
            override_settings(
                CELERY_TASK_ALWAYS_EAGER=False, EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"
            ),
        ):
            catalogue_clear()  # a long-lived process may remember an older launch of this slug
            # One transaction (the services' own become savepoints): on SQLite a commit per
            # order would cost a disk flush each. Nudges queued meanwhile run at the commit,
            # coalesced into one allocator run and one outbox drain.
            with transaction.atomic():
                self.admit(self.intents())
                launch_allocate(launch_id=self.launch.pk)
                self.walk_ins()
                self.collections()
                self.delivery()
                self.apology()
                self.second_launch()
            # The sender works outside any transaction of ours, like a worker.
            outbox_drain(time_budget=600)
        self.summary.emails = Message.objects.filter(launch=self.launch, status=Message.Status.SENT).count()
        self.summary.orders = Counter(
            dict(Order.objects.filter(launch=self.launch).values_list("status").annotate(n=Count("pk")))
        )
        return self.summary

    # --- orders -----------------------------------------------------------------------

    def _arrival(self) -> float:
        """Seconds after opening: most in the first minutes, a long tail to the hour's end."""
        return 1 + (HOUR - 60) * self.rng.random() ** 3

    def intents(self) -> list[Intent]:
        rng = self.rng
        registrations = list(
            UpgradeRegistration.objects.filter(launch=self.launch)
            .order_by("customer__account_number")
            .values_list("customer__account_number", "preferred_sku__code", "preferred_store_id")
        )
        rng.shuffle(registrations)
        store_by_id = {s.pk: s for s in self.stores}
        delivery: dict[str, list[str]] = defaultdict(list)
        collect: dict[tuple[int, str], list[str]] = defaultdict(list)
        for account, sku, store_id in registrations:
            if store_id is None:
                delivery[sku].append(account)
            else:
                collect[(store_id, sku)].append(account)

        intents = []
        for sku, accounts in delivery.items():
            wanted = max(
                round(len(accounts) * DELIVERY_SHARE.get(sku, 0.05)),
                round(self.online_units * DELIVERY_MINIMUM.get(sku, 0.5))
                + (1 if sku == "IP3G-16GB-BLACK" else 0),
            )
            for account in accounts[:wanted]:
                partner = rng.random() < 0.15
                intents.append(
                    Intent(
                        at=self._arrival(),
                        account=account,
                        sku=sku,
                        fulfilment=Order.Fulfilment.DELIVERY,
                        store=None,
                        channel=Order.Channel.PARTNER if partner else Order.Channel.ONLINE,
                        partner_id=self.partner.pk if partner else None,
                    )
                )
        for (store_id, sku), accounts in collect.items():
            store = store_by_id[store_id]
            wanted = round(self.store_units * COLLECT_SHARE.get(sku, 0.5))
            for account in accounts[:wanted]:
                if store.partner_id is not None and rng.random() < 0.6:
                    channel, partner_id = Order.Channel.PARTNER, store.partner_id
                elif store.partner_id is None and rng.random() < 0.3:
                    channel, partner_id = Order.Channel.STORE, None
                else:
                    channel, partner_id = Order.Channel.ONLINE, None
                intents.append(
                    Intent(
                        at=self._arrival(),
                        account=account,
                        sku=sku,
                        fulfilment=Order.Fulfilment.COLLECT,
                        store=store.code,
                        channel=channel,
                        partner_id=partner_id,
                    )
                )
        intents.sort(key=lambda i: i.at)
        return intents

    def admit(self, intents: list[Intent]) -> None:
        """Bulk admission, half a minute at a time, each batch at its own moment."""
        opens_at = self.launch.opens_at
        latest = timezone.now() - datetime.timedelta(seconds=1)
        buckets: dict[int, list[Intent]] = defaultdict(list)
        for intent in intents:
            buckets[int(intent.at // BUCKET_SECONDS)].append(intent)
        for bucket in sorted(buckets):
            now = min(opens_at + datetime.timedelta(seconds=bucket * BUCKET_SECONDS + 1), latest)
            groups: dict[tuple[str, int | None], list[Intent]] = defaultdict(list)
            for intent in buckets[bucket]:
                groups[(intent.channel, intent.partner_id)].append(intent)
            for (channel, partner_id), group in groups.items():
                for start in range(0, len(group), MAX_BULK_ITEMS):
                    chunk = group[start : start + MAX_BULK_ITEMS]
                    outcomes = orders_admit_bulk(
                        requests=[
                            OrderRequest(
                                launch=self.launch.slug,
                                customer=i.account,
                                sku=i.sku,
                                fulfilment=i.fulfilment,
                                store=i.store,
                            )
                            for i in chunk
                        ],
                        channel=channel,
                        partner_id=partner_id,
                        now=now,
                    )
                    for outcome in outcomes:
                        if outcome.refusal is not None:
                            self.summary.refused[outcome.refusal.code] += 1

    # --- stores -----------------------------------------------------------------------

    def walk_ins(self) -> None:
        """Each store's queue: tickets issued, the first served with what the store's panel
        shows as free (or sent away when nothing is), a few still waiting."""
        for index, store in enumerate(self.stores):
            staff = self.staff_by_store.get(store.pk)
            issued = 5 + index % 4
            waiting = 2 + index % 3
            # What staff read on the panel: units free, and models owed to collect orders.
            stock = {
                line.sku.code: line.stock.available for line in store_stock(store=store, launch=self.launch)
            }
            location = location_of_store(store=store)
            owed = (
                pool_waiting(
                    launch=self.launch, pool_id=location.pk, sku_ids=[s.pk for s in self.skus.values()]
                )
                if location
                else {}
            )
            free = {
                code: stock.get(code, 0) if not owed.get(sku.pk) else 0 for code, sku in self.skus.items()
            }
            for _ in range(issued):
                ticket_issue(launch=self.launch, store=store)
            for _ in range(issued - waiting):
                code = next((c for c in WALK_IN_PREFERENCE if free.get(c, 0) > 0), None)
                if code is None:
                    ticket_pass_over(launch=self.launch, store=store, user=staff)
                    continue
                ticket_serve_next(launch=self.launch, store=store, sku=self.skus[code], user=staff)
                free[code] -= 1
        self._spread_tickets()
        self.summary.tickets = Counter(
            dict(Ticket.objects.filter(launch=self.launch).values_list("status").annotate(n=Count("pk")))
        )
        self.summary.tickets["issued"] = sum(self.summary.tickets.values())

    def _spread_tickets(self) -> None:
        """Tickets were issued just now; put them across the hour, in ticket order."""
        opens_at = self.launch.opens_at
        tickets = list(Ticket.objects.filter(launch=self.launch).order_by("store_id", "number"))
        per_store = Counter(t.store_id for t in tickets)
        for ticket in tickets:
            share = ticket.number / (per_store[ticket.store_id] + 1)
            ticket.issued_at = opens_at + datetime.timedelta(seconds=120 + share * (HOUR - 300))
            if ticket.served_at is not None:
                ticket.served_at = ticket.issued_at + datetime.timedelta(minutes=4)
        Ticket.objects.bulk_update(tickets, ["issued_at", "served_at"], batch_size=1000)

    def collections(self) -> None:
        """A few of each store's held orders handed over; two more left past their time."""
        held: dict[int, list[Order]] = defaultdict(list)
        for order in (
            Order.objects.filter(
                launch=self.launch, fulfilment=Order.Fulfilment.COLLECT, status=Order.Status.ALLOCATED
            )
            .select_related("sku", "pool")
            .order_by("sequence")
        ):
            held[order.store_id].append(order)
        overdue_ids = []
        now = timezone.now()
        for store in self.stores:
            orders = held.get(store.pk, [])
            handed = min(len(orders) // 3, 3)
            for order in orders[:handed]:
                order_collect(order=order, user=self.staff_by_store.get(store.pk))
            self.summary.collected += handed
            overdue_ids += [o.pk for o in orders[handed : handed + 2]]
        # Collect-by times are the allocator's (hours ahead); a few customers who never
        # came show what the store sees when a hold runs out.
        for minutes, pk in enumerate(overdue_ids):
            Order.objects.filter(pk=pk).update(collect_by=now - datetime.timedelta(minutes=10 + minutes % 50))
        self.summary.overdue = len(overdue_ids)

    # --- head office ------------------------------------------------------------------

    def delivery(self) -> None:
        """Next Friday's delivery, announced by the supplier: a fraction of what was asked
        for, with head office's plan suggested from today's demand and not yet approved."""
        today = timezone.localdate()
        friday = today + datetime.timedelta(days=(4 - today.weekday()) % 7 or 7)
        waiting = Counter(
            dict(
                Order.objects.filter(
                    launch=self.launch, status__in=[Order.Status.WAITLISTED, Order.Status.QUEUED]
                )
                .values_list("sku__code")
                .annotate(n=Count("pk"))
            )
        )
        lines = []
        for number, (code, sku) in enumerate(sorted(self.skus.items()), start=1):
            asked = waiting.get(code, 0) + self.online_units + self.store_units * len(self.stores)
            lines.append(
                ManifestLine(line=number, sku=sku, quantity=max(asked // 4, 1), requested_quantity=asked)
            )
        reference = f"{self.launch.slug.upper()}-{friday:%Y%m%d}"
        manifest = Manifest(
            reference=reference, expected_on=friday, launch_slug=self.launch.slug, lines=lines
        )
        delivery, _ = delivery_announce(manifest=manifest, source="demo story")
        delivery_plan_suggest(delivery=delivery, user=self.head_office)
        self.summary.delivery = delivery.reference

    def apology(self) -> None:
        campaign = launch_campaign_start(
            launch=self.launch,
            kind=Message.Kind.APOLOGY,
            audience=Campaign.Audience.WAITLISTED,
            started_by=self.head_office,
        )
        self.summary.apologies = campaign.queued

    def second_launch(self) -> None:
        """The next launch: registration of interest open, ordering in three weeks."""
        opens_at = timezone.now().replace(hour=8, minute=0, second=0, microsecond=0) + datetime.timedelta(
            days=21
        )
        launch = Launch.objects.create(
            slug=SECOND_LAUNCH_SLUG,
            name=SECOND_LAUNCH_NAME,
            opens_at=opens_at,
            closes_at=opens_at + datetime.timedelta(days=14),
            per_customer_limit=1,
        )
        skus = list(self.skus.values())
        launch.skus.set(skus)
        rng = self.rng
        accounts = list(
            UpgradeRegistration.objects.filter(launch=self.launch)
            .order_by("customer_id")
            .values_list("customer_id", flat=True)
        )
        chosen = accounts[:: max(int(1 / SECOND_LAUNCH_REGISTERED), 1)]
        UpgradeRegistration.objects.bulk_create(
            [
                UpgradeRegistration(
                    customer_id=customer_id,
                    launch=launch,
                    preferred_sku=rng.choice(skus),
                    preferred_store=rng.choice(self.stores) if rng.random() < 0.5 else None,
                )
                for customer_id in chosen
            ],
            batch_size=5000,
        )
        eligibility_cache_warm(launch=launch)
        self.summary.second_launch_registrations = len(chosen)


class _celery_eager:
    """Run tasks in this process (as the embedded demo does) for the story's duration."""

    def __enter__(self):
        self.was = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True

    def __exit__(self, *exc):
        celery_app.conf.task_always_eager = self.was
