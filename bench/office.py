"""Head office's pages at launch scale, over HTTP against the running stack (issue 11).

A phase of `make bench` (bench/run.py, `--phases office`), run while the stack is up like
the store panel. It seeds a launch of its own into the bench's database (400,000
customers, 400,000 registrations and 320,000 orders over the launch's first 50 minutes,
the surge at the end; a tenth of them click and collect at the stores) with set-based
SQL, in a state the allocator itself could have left: each pool's first units allocated
in sequence order, the rest waitlisted with their wait numbers and told places, stock
reserved through the ledger and each pool's PoolState, so every invariant of the bench
and the fairness audit hold on it, and the stack's allocator finds nothing to move. It
also announces a delivery for the launch and has its allocation plan suggested from
demand, as head office's intake does, so the plan page is measured.

Then, signed in as head office (password and second factor), with gzip accepted as a
browser does:

- one open-loop morning (latency from each request's schedule, so a slow answer cannot
  hold the next back): ten head-office browsers, each signed in as a user of its own,
  polling the fragments (the overview's live panel every 5 s, the System panel every 2 s)
  all along, counting the polls answered from memory (config.polls), and
  meanwhile each page in turn at PAGE_LOADS_PER_S: the overview, charts.json, demand vs
  supply, the plan page, the orders page (newest, a status filter, a search by
  reference), customer search by account number, email and part of a name, and the
  fairness audit page and its CSV: p50 / p99 / max, bytes on the wire and uncompressed;
- then each page back to back on a few connections for MOST_SECONDS: the most loads a
  second it gets (its latency there is the client's own queue, so no target is held to it);
- in this process, page loads (test client) beside beat's recount of the office
  snapshots, blocks of RECOUNT_BLOCK_SECONDS taking turns, RECOUNT_ROUNDS times: the
  recount as beat runs it (on one core, orders.selectors.launches.counting_on_one_core),
  as it ran before (PostgreSQL's parallel workers), each every RECOUNT_EVERY_S, and no
  recount (the floor): the same pages in the same minutes, so the machine's drift between
  runs cannot decide it;
- in this process: the pulse counted without its 2 s share, the fairness audit's
  selector with the top node of its first statement's plan, and each page through Django's
  test client (no HTTP: the floor under the figures above, which tells a busy machine's
  queueing from a page's own cost).

Targets (issue 11): every polled fragment p99 <= 20 ms and <= 10 KB, every page load
p99 <= 100 ms, customer search <= 50 ms. The fairness audit is an audit, read after the
morning: its figure is reported against 100 ms, not made to meet it.
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import time
from dataclasses import dataclass

from bench import httpclient
from bench.figures import OfficeFigures, OfficeRequestFigures, OfficeSelectorFigures, percentile
from bench.stack import HOST, Stack, log

LAUNCH = "office-bench"
DELIVERY = "OB-DELIVERY-1"
CUSTOMERS = 400_000
ORDERS = 320_000
# Units per SKU: enough that the morning has both served and waiting orders everywhere.
ONLINE_UNITS = 50_000
STORE_UNITS = 200
STORES = 20
BROWSERS = 10
PULSE_EVERY_S = 5.0  # templates/orders/launch_overview.html: hx-trigger="every 5s"
SYSTEM_EVERY_S = 2.0  # templates/system.html: hx-trigger="every 2s"
CONNECTIONS = 2
# Page loads as head office makes them: an open loop (latency from each load's schedule),
# while every poll above goes on. Four loads a second of one page is more than ten planners
# make of all pages together; the audit, seconds a call, is read at one every two seconds.
PAGE_LOADS_PER_S = 4.0
AUDIT_LOADS_PER_S = 0.5
# Then each page back to back on CONNECTIONS connections this long: the most loads a
# second the stack gives it (a capacity, not a latency: the queue there is the client's).
MOST_SECONDS = 3.0
# Page loads beside the recount: blocks taking turns between its ways (RECOUNT_WAYS), each
# recounting three times as often as beat (every 10 s) so a block holds about eight.
RECOUNT_ROUNDS = 2
RECOUNT_BLOCK_SECONDS = 25.0
RECOUNT_EVERY_S = 3.0
RECOUNT_LOAD_GAP_S = 0.05
POLL_TARGET_MS, POLL_TARGET_BYTES = 20.0, 10_240
PAGE_TARGET_MS = 100.0
SEARCH_TARGET_MS = 50.0

_CUSTOMERS_SQL = """
INSERT INTO customers_customer (account_number, name, email, phone, postcode, current_device,
  contract_status, marketing_opt_out, created_at)
SELECT 'OB' || lpad(g::text, 7, '0'),
  (ARRAY['Jo','Sam','Alex','Priya','Chen','Ola','Rosa','Tom'])[1 + g %% 8] || ' ' ||
  (ARRAY['Bloggs','Smith','Khan','Okafor','Nguyen','Garcia','Jones','Evans'])[1 + (g / 8) %% 8] || g,
  'ob' || g || '@example.com', '', 'AB1 2CD', '', 'active', false, now()
FROM generate_series(1, %(customers)s) g
"""

_REGISTRATIONS_SQL = """
INSERT INTO customers_upgraderegistration (customer_id, launch_id, preferred_sku_id,
  preferred_store_id, registered_at)
SELECT c.id, %(launch)s, (%(skus)s::bigint[])[1 + c.id %% 3],
  CASE WHEN c.id %% 2 = 0 THEN NULL
       ELSE (%(stores)s::bigint[])[1 + c.id %% array_length(%(stores)s::bigint[], 1)] END, now()
FROM customers_customer c WHERE c.account_number LIKE 'OB%%'
"""

# One order per customer, in sequence order (ORDER BY n, so the sequence follows n and so
# does created_at). Each pool's first `units` orders by sequence hold a unit; the rest
# wait with wait numbers 1, 2, ... told as their place at the moment they were waitlisted
# (nobody has left a waitlist yet, so the place is the wait number).
_ORDERS_SQL = """
WITH c AS (
  SELECT id, row_number() OVER (ORDER BY id) AS n FROM customers_customer
  WHERE account_number LIKE 'OB%%'
), routed AS (
  SELECT c.id AS customer_id, c.n,
    (%(skus)s::bigint[])[1 + c.n %% 3] AS sku_id,
    CASE WHEN c.n %% 10 = 0 THEN 1 + (c.n / 10) %% array_length(%(stores)s::bigint[], 1) END AS k,
    %(opens)s::timestamptz + (sqrt(c.n::float / %(orders)s) * interval '50 minutes') AS created_at
  FROM c WHERE c.n <= %(orders)s
), pooled AS (
  SELECT r.*, (%(stores)s::bigint[])[r.k] AS store_id,
    COALESCE((%(locations)s::bigint[])[r.k], %(online)s) AS pool_id,
    CASE WHEN r.k IS NULL THEN %(online_units)s ELSE %(store_units)s END AS units
  FROM routed r
), turned AS (
  SELECT p.*, row_number() OVER (PARTITION BY p.sku_id, p.pool_id ORDER BY p.n) AS turn FROM pooled p
)
INSERT INTO orders_order (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, store_id,
  pool_id, partner_id, status, wait_number, idempotency_scope, idempotency_key, request_fingerprint,
  created_at, allocated_at, waitlisted_at, told_position)
SELECT 'OB' || lpad(t.n::text, 8, '0'), %(launch)s, t.customer_id, 1, t.sku_id,
  CASE WHEN t.store_id IS NULL THEN 'online' ELSE 'store' END,
  CASE WHEN t.store_id IS NULL THEN 'delivery' ELSE 'collect' END,
  t.store_id, t.pool_id, NULL,
  CASE WHEN t.turn <= t.units THEN 'allocated' ELSE 'waitlisted' END,
  CASE WHEN t.turn > t.units THEN t.turn - t.units END, '', NULL, '',
  t.created_at,
  CASE WHEN t.turn <= t.units THEN t.created_at + interval '1 second' END,
  CASE WHEN t.turn > t.units THEN t.created_at + interval '1 second' END,
  CASE WHEN t.turn > t.units THEN t.turn - t.units END
FROM turned t ORDER BY t.n
"""


@dataclass(frozen=True)
class OfficeSeed:
    slug: str
    delivery: str
    customers: int
    registrations: int
    orders: int
    orders_by_status: dict[str, int]
    seconds: float
    reference: str  # an order to search for
    account: str
    email: str
    name_part: str


def seed(*, customers: int = CUSTOMERS, orders: int = ORDERS) -> OfficeSeed:
    """The office launch at `orders` orders, once (a second call finds it and counts it)."""
    from django.db import connection, transaction
    from django.db.models import Count
    from django.utils import timezone

    from inventory.manifests import Manifest, ManifestLine
    from inventory.models import SKU, Launch, Product
    from inventory.services import (
        delivery_announce,
        location_for_store,
        location_online_pool,
        stock_receive,
        stock_reserve_bulk,
        stock_rows_for_update,
    )
    from orders.models import Order, PoolState
    from orders.services.intake import delivery_plan_suggest
    from stores.models import Store

    started = time.monotonic()
    orders = min(orders, customers)
    # A smaller morning (--quick) keeps the shape: about half the orders served.
    online_units = max(1, ONLINE_UNITS * orders // ORDERS)
    store_units = max(1, STORE_UNITS * orders // ORDERS)
    launch = Launch.objects.filter(slug=LAUNCH).first()
    if launch is None:
        product, _ = Product.objects.get_or_create(code="OB", defaults={"name": "Office bench phone"})
        skus = [
            SKU.objects.create(code=f"OB-{n:02d}", product=product, name=f"Office bench phone {n}")
            for n in range(3)
        ]
        opens = timezone.now() - datetime.timedelta(minutes=50)
        launch = Launch.objects.create(
            slug=LAUNCH, name="Office bench", opens_at=opens, closes_at=opens + datetime.timedelta(days=7)
        )
        launch.skus.set(skus)
        online = location_online_pool()
        stores = list(Store.objects.filter(is_active=True).order_by("code")[:STORES])
        locations = [location_for_store(store=s) for s in stores]
        for sku in skus:
            stock_receive(location=online, sku=sku, quantity=online_units, reference="office bench")
            for location in locations:
                stock_receive(location=location, sku=sku, quantity=store_units, reference="office bench")
        params = {
            "customers": customers,
            "orders": orders,
            "launch": launch.pk,
            "skus": [s.pk for s in skus],
            "stores": [s.pk for s in stores],
            "locations": [loc.pk for loc in locations],
            "online": online.pk,
            "online_units": online_units,
            "store_units": store_units,
            "opens": opens,
        }
        # The orders, their units and their pools' waitlists in one transaction: the
        # stack's allocator (beat, every second) sees all of it or none of it.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CUSTOMERS_SQL, params)
            cursor.execute(_REGISTRATIONS_SQL, params)
            cursor.execute(_ORDERS_SQL, params)
            held = {
                (pool, sku): n
                for sku, pool, n in Order.objects.filter(launch=launch, status=Order.Status.ALLOCATED)
                .values_list("sku_id", "pool_id")
                .annotate(n=Count("pk"))
            }
            stock_rows_for_update(pairs=list(held))
            stock_reserve_bulk(
                reservations=held, reason="office bench seed", reference=f"office-bench:{LAUNCH}"
            )
            waiting = (
                Order.objects.filter(launch=launch, status=Order.Status.WAITLISTED)
                .values_list("sku_id", "pool_id")
                .annotate(n=Count("pk"))
            )
            PoolState.objects.bulk_create(
                [
                    PoolState(launch=launch, sku_id=sku, pool_id=pool, waitlisted_total=n, waiting=n)
                    for sku, pool, n in waiting
                ]
            )
        delivery, _ = delivery_announce(
            manifest=Manifest(
                reference=DELIVERY,
                expected_on=timezone.localdate() + datetime.timedelta(days=2),
                launch_slug=LAUNCH,
                lines=[ManifestLine(line=n + 1, sku=sku, quantity=5_000) for n, sku in enumerate(skus)],
            ),
            source="office bench",
        )
        delivery_plan_suggest(delivery=delivery)
        with connection.cursor() as cursor:
            # Summarises the BRIN ranges autovacuum (autosummarize) would as orders came in.
            cursor.execute("VACUUM ANALYZE orders_order")
            cursor.execute("VACUUM ANALYZE customers_customer")
            cursor.execute("VACUUM ANALYZE customers_upgraderegistration")
    from customers.models import UpgradeRegistration

    by_status = dict(
        Order.objects.filter(launch=launch).values_list("status").annotate(n=Count("pk")).order_by()
    )
    middle = max(1, min(orders, customers) // 2)
    return OfficeSeed(
        slug=LAUNCH,
        delivery=DELIVERY,
        customers=customers,
        registrations=UpgradeRegistration.objects.filter(launch=launch).count(),
        orders=sum(by_status.values()),
        orders_by_status=by_status,
        seconds=time.monotonic() - started,
        reference=f"OB{middle:08d}",
        account=f"OB{middle + 1:07d}",
        email=f"ob{middle + 2}@example.com",
        name_part=f"Okafor{middle // 10}",
    )


def head_office_client(n: int = 0):
    """A Django test client signed in as head office (password and second factor), asking
    with the stack's host name: browser `n`, a user and session of its own."""
    from django.test import Client

    from stores.models import StaffMembership
    from stores.tests.factories import UserFactory, head_office_login

    user = UserFactory(username=f"office-bench-{n}" if n else "office-bench")
    StaffMembership.objects.get_or_create(
        user=user, store=None, defaults={"role": StaffMembership.Role.HEAD_OFFICE}
    )
    client = Client(HTTP_HOST=HOST)
    head_office_login(client, user)
    return client


def cookie_of(client) -> str:
    """The client's session as a browser's Cookie header."""
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


def get_bytes(path: str, cookie: str, *, htmx: bool = False) -> bytes:
    """A browser's GET: the session cookie, gzip accepted, and htmx's header for a poll."""
    hx = "HX-Request: true\r\n" if htmx else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{hx}"
        f"Accept-Encoding: gzip, deflate, br\r\nCookie: {cookie}\r\n\r\n"
    ).encode()


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    target_ms: float
    note: str = ""


def pages(s: OfficeSeed) -> list[Page]:
    from urllib.parse import quote

    from django.urls import reverse

    slug = {"slug": s.slug}
    lookup = reverse("customer-lookup")
    orders = reverse("order-list")
    fairness = reverse("launch-fairness", kwargs=slug)
    return [
        Page("overview page", reverse("launch-overview", kwargs=slug), PAGE_TARGET_MS),
        Page("overview charts.json", reverse("launch-charts", kwargs=slug), PAGE_TARGET_MS),
        Page("demand vs supply page", reverse("inventory:demand", kwargs=slug), PAGE_TARGET_MS),
        Page("plan page", reverse("inventory:plan-detail", kwargs={"reference": s.delivery}), PAGE_TARGET_MS),
        Page("orders page, the launch's newest", f"{orders}?launch={s.slug}", PAGE_TARGET_MS),
        Page("orders page, waitlisted", f"{orders}?launch={s.slug}&status=waitlisted", PAGE_TARGET_MS),
        Page("orders page, a reference", f"{orders}?q={s.reference}", PAGE_TARGET_MS),
        Page("customer search: account number", f"{lookup}?q={s.account}", SEARCH_TARGET_MS),
        Page("customer search: email", f"{lookup}?q={quote(s.email)}", SEARCH_TARGET_MS),
        Page("customer search: part of a name", f"{lookup}?q={s.name_part}", SEARCH_TARGET_MS),
        Page("fairness audit page", fairness, PAGE_TARGET_MS, "an audit, read after the morning"),
        Page(
            "fairness audit CSV", f"{fairness}?format=csv", PAGE_TARGET_MS, "an audit, read after the morning"
        ),
    ]


# latency ms, status, bytes on the wire, bytes uncompressed, Age (None: Django answered it)
Seen = tuple[list[float], list[int], list[int], list[int], list[int | None]]


def _seen() -> Seen:
    return [], [], [], [], []


def _record(seen: Seen, answer: httpclient.Answer, latency_ms: float) -> None:
    import gzip

    latencies, statuses, sizes, plain, ages = seen
    latencies.append(latency_ms)
    statuses.append(answer.status)
    sizes.append(len(answer.body))
    plain.append(len(gzip.decompress(answer.body)) if answer.body[:2] == b"\x1f\x8b" else len(answer.body))
    ages.append(answer.age)


def _merged(seens: list[Seen]) -> Seen:
    merged = _seen()
    for seen in seens:
        for into, values in zip(merged, seen, strict=True):
            into.extend(values)  # type: ignore[arg-type]
    return merged


@dataclass(frozen=True)
class Stream:
    """Requests of one kind on a schedule of their own: `rate` a second from `start` for
    `seconds` (both from the loop's start)."""

    name: str
    payload: bytes
    rate: float
    start: float
    seconds: float


async def _open_loop(*, port: int, streams: list[Stream]) -> dict[str, Seen]:
    """Every stream on its own schedule at once; latency from each request's schedule."""
    pool = httpclient.Pool(host=HOST, port=port, max_connections=64, timeout=30.0, tally=httpclient.Tally())
    seen: dict[str, Seen] = {s.name: _seen() for s in streams}
    started = time.monotonic()

    async def one(name: str, payload: bytes, due: float) -> None:
        answer = await pool.request(payload)
        _record(seen[name], answer, (time.monotonic() - due) * 1000)

    async def stream(s: Stream) -> None:
        tasks, k = [], 0
        while (due := started + s.start + k / s.rate) < started + s.start + s.seconds:
            await asyncio.sleep(max(due - time.monotonic(), 0))
            tasks.append(asyncio.create_task(one(s.name, s.payload, due)))
            k += 1
        await asyncio.gather(*tasks)

    try:
        await asyncio.gather(*(stream(s) for s in streams))
    finally:
        await pool.close()
    return seen


async def _loads(*, port: int, payload: bytes, connections: int, seconds: float) -> Seen:
    """`connections` connections asking for one page back to back for `seconds`."""
    pool = httpclient.Pool(
        host=HOST, port=port, max_connections=connections, timeout=30.0, tally=httpclient.Tally()
    )
    seen: Seen = _seen()
    end = time.monotonic() + seconds

    async def client() -> None:
        while True:  # at least one request each, so seconds=0 is a warm-up
            sent = time.monotonic()
            answer = await pool.request(payload)
            _record(seen, answer, (time.monotonic() - sent) * 1000)
            if time.monotonic() >= end:
                return

    try:
        await asyncio.gather(*(client() for _ in range(connections)))
    finally:
        await pool.close()
    return seen


def request_figures(
    *, name: str, path: str, kind: str, seen: Seen, seconds: float, target_ms: float, target_bytes: int = 0,
    note: str = "",
) -> OfficeRequestFigures:  # fmt: skip
    latencies, statuses, sizes, plain, ages = seen
    ordered = sorted(latencies)
    memory = sorted(ms for ms, age in zip(latencies, ages, strict=True) if age is not None)
    by_django = sorted(ms for ms, age in zip(latencies, ages, strict=True) if age is None)
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return OfficeRequestFigures(
        name=name,
        path=path,
        kind=kind,
        requests=len(statuses),
        per_s=len(statuses) / seconds if seconds else 0.0,
        statuses=counts,
        p50_ms=percentile(ordered, 50),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else 0.0,
        bytes_max=max(sizes, default=0),
        page_bytes_max=max(plain, default=0),
        target_ms=target_ms,
        target_bytes=target_bytes,
        note=note,
        from_memory=len(memory),
        age_max_s=max((age for age in ages if age is not None), default=0),
        memory_p99_ms=percentile(memory, 99),
        django_p50_ms=statistics.median(by_django) if by_django else 0.0,
        django_max_ms=by_django[-1] if by_django else 0.0,
    )


def selectors_in_process(*, slug: str, rounds: int) -> tuple[list[OfficeSelectorFigures], str]:
    """The pulse counted without its share, and the fairness audit's selector; and the top
    of the audit's first statement's plan (EXPLAIN ANALYZE)."""
    from django.db import connection
    from django.utils import timezone

    from inventory.models import Launch
    from orders.selectors import fairness
    from orders.selectors.pulse import launch_pulse

    launch = Launch.objects.get(slug=slug)
    results = []
    for name, call, n in (
        ("pulse counted, without the 2 s share (selector)", lambda: launch_pulse(launch=launch), rounds),
        ("fairness audit (selector, four statements)", lambda: fairness.launch_fairness(launch=launch), 5),
    ):
        call()  # warm
        took = []
        for _ in range(n):
            t = time.perf_counter()
            call()
            took.append((time.perf_counter() - t) * 1000)
        took.sort()
        results.append(
            OfficeSelectorFigures(
                name=name,
                calls=n,
                p50_ms=statistics.median(took),
                p99_ms=percentile(took, 99),
                max_ms=took[-1],
            )
        )
    params = {"launch": launch.pk, "now": timezone.now(), "draw_closes": None}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + fairness._TURN, params)
        plan = [row[0] for row in cursor.fetchall()]
    top = plan[0].strip() if plan else ""
    total = next((line.strip() for line in plan if line.strip().startswith("Execution Time")), "")
    return results, f"{top}; {total}"


def pages_in_process(*, client, pages: list[Page], rounds: int) -> list[OfficeSelectorFigures]:
    """Each page through Django's test client in this process: the view's own cost
    (middleware, queries, template) without HTTP, the server or its queue; the floor under
    the figures over HTTP, which tells the machine's contention from the page's cost."""
    results = []
    for page in pages:
        n = max(3, rounds // 10) if page.note else rounds  # the audit takes seconds a call
        client.get(page.path)  # warm
        took = []
        for _ in range(n):
            t = time.perf_counter()
            answer = client.get(page.path)
            took.append((time.perf_counter() - t) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(f"{page.name}: {answer.status_code} in process")
        took.sort()
        results.append(
            OfficeSelectorFigures(
                name=f"{page.name} (test client)",
                calls=n,
                p50_ms=statistics.median(took),
                p99_ms=percentile(took, 99),
                max_ms=took[-1],
            )
        )
    return results


# The ways the recount is run beside the page loads, taking turns block by block.
ONE_CORE, PARALLEL, NO_RECOUNT = "on one core, as beat runs it", "with parallel workers, as before", "none"
RECOUNT_WAYS = (ONE_CORE, PARALLEL, NO_RECOUNT)


def _recount_until(*, until: float, way: str, took: list[float]) -> None:
    """Beat's recount of every watched launch's snapshots, every RECOUNT_EVERY_S until
    `until`: as beat runs it, or with parallel workers as it ran before (the control)."""
    from django.db import connection

    from orders.selectors import launches

    try:
        while time.monotonic() < until:
            started = time.monotonic()
            if way == ONE_CORE:
                launches.office_snapshots_refresh()
            else:
                for launch in launches.launches_watched():
                    launches.launch_overview_refresh(
                        launch=launch, seconds=launches.REFRESHED_SNAPSHOT_SECONDS
                    )
                    launches.demand_vs_supply_refresh(
                        launch=launch, seconds=launches.REFRESHED_SNAPSHOT_SECONDS
                    )
            took.append((time.monotonic() - started) * 1000)
            time.sleep(max(0.0, RECOUNT_EVERY_S - (time.monotonic() - started)))
    finally:
        connection.close()


def pages_beside_recount(
    *, client, pages: list[Page], rounds: int, seconds: float
) -> list[OfficeSelectorFigures]:
    """Page loads through the test client while a thread recounts the snapshots, blocks
    taking turns between the recount on one core, with parallel workers, and no recount
    at all (the floor the other two are read against)."""
    import threading

    paths = [p.path for p in pages if not p.note]
    loads: dict[str, list[float]] = {way: [] for way in RECOUNT_WAYS}
    recounts: dict[str, list[float]] = {way: [] for way in RECOUNT_WAYS}
    for _ in range(rounds):
        for way in RECOUNT_WAYS:
            until = time.monotonic() + seconds
            recount = None
            if way != NO_RECOUNT:
                recount = threading.Thread(
                    target=_recount_until, kwargs={"until": until, "way": way, "took": recounts[way]}
                )
                recount.start()
            n = 0
            while time.monotonic() < until:
                t = time.perf_counter()
                client.get(paths[n % len(paths)])
                loads[way].append((time.perf_counter() - t) * 1000)
                n += 1
                time.sleep(RECOUNT_LOAD_GAP_S)
            if recount is not None:
                recount.join()
    results = []
    for way in RECOUNT_WAYS:
        took = sorted(loads[way])
        counted = sorted(recounts[way])
        beside = (
            f"{len(counted)} recounts every {RECOUNT_EVERY_S:g} s, p50 {statistics.median(counted):,.0f} ms"
            if counted
            else "no recount"
        )
        results.append(
            OfficeSelectorFigures(
                name=(
                    f"page loads beside the snapshots' recount: {way} (test client, every page but the audit; "
                    f"{beside}; p90 of loads {percentile(took, 90):.1f} ms)"
                ),
                calls=len(took),
                p50_ms=statistics.median(took),
                p99_ms=percentile(took, 99),
                max_ms=took[-1],
            )
        )
    return results


def run(*, running: Stack, page_seconds: float, quick: bool) -> OfficeFigures:
    log("office: seeding the office launch" + (" (quick: 40,000 orders)" if quick else ""))
    s = seed(customers=50_000, orders=40_000) if quick else seed()
    log(f"office: {s.orders:,} orders {s.orders_by_status} of {s.customers:,} customers in {s.seconds:.0f}s")
    client = head_office_client()
    cookie = cookie_of(client)
    # Each head-office screen is a browser of its own: its own user and session, as a
    # panel answered from memory is answered per session (config.polls).
    cookies = [cookie] + [cookie_of(head_office_client(n)) for n in range(1, BROWSERS)]
    from django.urls import reverse

    overview = reverse("launch-overview", kwargs={"slug": s.slug})
    system = reverse("system")
    polls = [("overview live panel", overview, PULSE_EVERY_S), ("System panel", system, SYSTEM_EVERY_S)]
    the_pages = pages(s)
    morning = page_seconds * len(the_pages)
    warm = [
        Stream(f"{name} {n}", get_bytes(path, browser, htmx=True), 2.0, 0.0, 1.0)
        for name, path, _ in polls
        for n, browser in enumerate(cookies)
    ]
    warm += [Stream(p.name, get_bytes(p.path, cookie), 1.0, 0.0, 1.0) for p in the_pages]
    asyncio.run(_open_loop(port=running.port, streams=warm))  # imports, templates, caches
    # This process is the browsers as well as the test client below: its own full
    # collections (35-80 ms over what seeding and the earlier phases left) are not the
    # pages' latency, so it settles its heap as the web workers do.
    from config.heap import heap_settle

    heap_settle()
    # Each browser polls every `every` seconds, the browsers spread over that interval.
    streams = [
        Stream(f"{name} {n}", get_bytes(path, browser, htmx=True), 1 / every, n * every / BROWSERS, morning)
        for name, path, every in polls
        for n, browser in enumerate(cookies)
    ]
    streams += [
        Stream(
            page.name,
            get_bytes(page.path, cookie),
            AUDIT_LOADS_PER_S if page.note else PAGE_LOADS_PER_S,
            n * page_seconds,
            page_seconds,
        )  # fmt: skip
        for n, page in enumerate(the_pages)
    ]
    log(f"office: {BROWSERS} browsers polling and each page in turn for {morning:.0f}s, open loop")
    seen = asyncio.run(_open_loop(port=running.port, streams=streams))
    requests = [
        request_figures(
            name=f"{name} (polled, {BROWSERS} browsers)",
            path=path,
            kind="poll",
            seen=_merged([seen[f"{name} {n}"] for n in range(BROWSERS)]),
            seconds=morning,
            target_ms=POLL_TARGET_MS,
            target_bytes=POLL_TARGET_BYTES,
        )  # fmt: skip
        for name, path, _ in polls
    ]
    for page in the_pages:
        loaded = asyncio.run(
            _loads(port=running.port, payload=get_bytes(page.path, cookie), connections=CONNECTIONS,
                   seconds=MOST_SECONDS)
        )  # fmt: skip
        figures = request_figures(
            name=page.name, path=page.path, kind="page", seen=seen[page.name], seconds=page_seconds,
            target_ms=page.target_ms, note=page.note,
        )  # fmt: skip
        figures.most_per_s = len(loaded[1]) / MOST_SECONDS
        log(
            f"office: {page.name}: p50 {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms, {figures.statuses}; "
            f"most {figures.most_per_s:.0f}/s"
        )
        requests.append(figures)
    in_process, fairness_plan = selectors_in_process(slug=s.slug, rounds=20 if quick else 100)
    in_process += pages_in_process(client=client, pages=the_pages, rounds=20 if quick else 50)
    log("office: page loads beside the snapshots' recount, on one core and with parallel workers in turn")
    in_process += pages_beside_recount(
        client=client, pages=the_pages, rounds=1 if quick else RECOUNT_ROUNDS,
        seconds=10.0 if quick else RECOUNT_BLOCK_SECONDS,
    )  # fmt: skip
    return OfficeFigures(
        launch=s.slug,
        customers=s.customers,
        registrations=s.registrations,
        orders=s.orders,
        orders_by_status=s.orders_by_status,
        seed_seconds=s.seconds,
        browsers=BROWSERS,
        connections=CONNECTIONS,
        poll_seconds=morning,
        page_seconds=page_seconds,
        requests=requests,
        in_process=in_process,
        fairness_plan=fairness_plan,
    )
