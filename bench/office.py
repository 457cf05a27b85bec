"""Head office's pages at launch scale, measured in process (issue 11).

Seeds a database of its own to the bench's launch scale (400,000 customers, 400,000
registrations, 320,000 orders of one launch over its first hour, the surge in the last
minutes) with set-based SQL, then asks each office page and polled fragment N times
through Django's test client, signed in as head office, and prints p50 / p99 / bytes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_office REDIS_URL=redis://127.0.0.1:6379/7 \\
        DJANGO_SETTINGS_MODULE=config.settings.local .venv/bin/python -m bench.office

In process means no HTTP server, no network and no other load: the figures are the
view's own cost (queries, template, middleware), a floor under what a browser sees
through the running stack. Not yet a phase of `make bench` (bench/run.py).

Targets: every polled fragment p99 <= 20 ms and <= 10 KB, every page load p99 <= 100 ms,
customer search by account number or name <= 50 ms.
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import time

CUSTOMERS = 400_000
ORDERS = 320_000
REQUESTS = int(os.environ.get("OFFICE_REQUESTS", "200"))


def seed() -> None:
    from django.db import connection
    from django.utils import timezone

    from inventory.models import Launch
    from inventory.services import location_for_store, location_online_pool, stock_receive
    from inventory.tests.factories import LaunchFactory, SKUFactory
    from stores.tests.factories import StoreFactory

    if Launch.objects.filter(slug="office-bench").exists():
        return
    started = time.monotonic()
    opens = timezone.now() - datetime.timedelta(minutes=50)
    skus = [SKUFactory(code=f"OB-{n:02d}") for n in range(3)]
    launch = LaunchFactory(
        slug="office-bench", opens_at=opens, closes_at=opens + datetime.timedelta(days=7), skus=skus
    )
    online = location_online_pool()
    stores = [StoreFactory(code=f"B{n:03d}") for n in range(20)]
    for sku in skus:
        stock_receive(location=online, sku=sku, quantity=50_000, reference="bench")
        for store in stores:
            stock_receive(location=location_for_store(store=store), sku=sku, quantity=200, reference="bench")
    sku_ids = [s.pk for s in skus]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (account_number, name, email, phone, postcode, current_device, "
            "contract_status, marketing_opt_out, created_at) "
            "SELECT 'OB' || lpad(g::text, 7, '0'), "
            "(ARRAY['Jo','Sam','Alex','Priya','Chen','Ola','Rosa','Tom'])[1 + g %% 8] || ' ' || "
            "(ARRAY['Bloggs','Smith','Khan','Okafor','Nguyen','Garcia','Jones','Evans'])[1 + (g / 8) %% 8] || g, "
            "'ob' || g || '@example.com', '', 'AB1 2CD', '', 'active', false, now() "
            "FROM generate_series(1, %s) g",
            [CUSTOMERS],
        )
        cursor.execute(
            "INSERT INTO customers_upgraderegistration (customer_id, launch_id, preferred_sku_id, "
            "preferred_store_id, registered_at) "
            "SELECT c.id, %s, (%s::bigint[])[1 + c.id %% 3], "
            "CASE WHEN c.id %% 2 = 0 THEN NULL ELSE (%s::bigint[])[1 + c.id %% 20] END, now() "
            "FROM customers_customer c WHERE c.account_number LIKE 'OB%%'",
            [launch.pk, sku_ids, [s.pk for s in stores]],
        )
        # Orders over the first 50 minutes, the surge at the end (created_at ~ sequence order).
        cursor.execute(
            "INSERT INTO orders_order (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, "
            "store_id, pool_id, partner_id, status, wait_number, idempotency_scope, idempotency_key, "
            "request_fingerprint, created_at) "
            "SELECT 'OB' || lpad(n::text, 8, '0'), %s, c.id, 1, (%s::bigint[])[1 + c.id %% 3], 'online', "
            "'delivery', NULL, %s, NULL, "
            "CASE WHEN n %% 5 = 0 THEN 'waitlisted' WHEN n %% 7 = 0 THEN 'queued' ELSE 'allocated' END, "
            "NULL, '', NULL, '', %s::timestamptz + (sqrt(n::float / %s) * interval '50 minutes') "
            "FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM customers_customer "
            "WHERE account_number LIKE 'OB%%') c WHERE n <= %s",
            [launch.pk, sku_ids, online.pk, opens, ORDERS, ORDERS],
        )
        # Summarises the BRIN ranges that autovacuum (autosummarize) would as the orders came in.
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded in {time.monotonic() - started:.0f}s", file=sys.stderr)


def measure() -> list[tuple[str, float, float, int]]:
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from inventory.models import AllocationPlan, Delivery
    from stores.models import StaffMembership
    from stores.tests.factories import UserFactory, head_office_login

    user = StaffMembership.objects.filter(role=StaffMembership.Role.HEAD_OFFICE).first()
    user = user.user if user else UserFactory(username="office-bench")
    if not StaffMembership.objects.filter(user=user).exists():
        StaffMembership.objects.create(user=user, role=StaffMembership.Role.HEAD_OFFICE)
    setup_test_environment(debug=False)  # the test client's host name allowed; DEBUG off, as served
    client = Client()
    head_office_login(client, user)
    overview = reverse("launch-overview", kwargs={"slug": "office-bench"})
    cases = [
        ("overview pulse fragment (polled)", overview, {}, {"HX-Request": "true"}),
        ("overview page", overview, {}, {}),
        ("overview charts.json", reverse("launch-charts", kwargs={"slug": "office-bench"}), {}, {}),
        ("demand vs supply page", reverse("inventory:demand", kwargs={"slug": "office-bench"}), {}, {}),
        ("customer search: account number", reverse("customer-lookup"), {"q": "OB0123456"}, {}),
        ("customer search: email", reverse("customer-lookup"), {"q": "ob123456@example.com"}, {}),
        ("customer search: part of a name", reverse("customer-lookup"), {"q": "Okafor12345"}, {}),
    ]
    plan = AllocationPlan.objects.select_related("delivery").first()
    if plan is not None and isinstance(plan.delivery, Delivery):
        cases.append(
            (
                "plan page",
                reverse("inventory:plan-detail", kwargs={"reference": plan.delivery.reference}),
                {},
                {},
            )
        )
    results = []
    for name, url, query, headers in cases:
        client.get(url, query, headers=headers)  # warm: caches, connections, templates
        took, size = [], 0
        for _ in range(REQUESTS):
            t = time.perf_counter()
            answer = client.get(url, query, headers=headers)
            took.append((time.perf_counter() - t) * 1000)
            assert answer.status_code == 200, (name, answer.status_code)
            size = max(size, len(answer.content))
        results.append((name, statistics.median(took), _p99(took), size))
    # The fragment above is mostly served from the 2 s shared pulse; this is the count
    # itself, as the first screen after each 2 s pays it.
    from inventory.models import Launch
    from orders.selectors.pulse import launch_pulse

    launch = Launch.objects.get(slug="office-bench")
    took = []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        launch_pulse(launch=launch)
        took.append((time.perf_counter() - t) * 1000)
    results.append(("pulse counted, uncached (selector)", statistics.median(took), _p99(took), 0))
    return results


def _p99(took: list[float]) -> float:
    took = sorted(took)
    return took[min(len(took) - 1, int(len(took) * 0.99))]


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed()
    print(f"{'what':40} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>8}  ({REQUESTS} requests each, in process)")
    for name, p50, p99, size in measure():
        print(f"{name:40} {p50:8.1f} {p99:8.1f} {size:8,}")


if __name__ == "__main__":
    main()
