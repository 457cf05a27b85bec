"""Head office's expensive snapshots (the overview's tables, demand against supply) are
counted by beat for the launches head office watches, never on a page load that finds
one expired; a page with no snapshot (no beat) still counts and keeps its own."""

import datetime
import re
import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from customers.models import UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.services import location_online_pool
from inventory.tests.factories import LaunchFactory
from inventory.tests.world import add_orders
from orders.selectors import demand, launches
from orders.tasks import refresh_office_snapshots
from stores.models import StaffMembership
from stores.tests.factories import UserFactory, head_office_login

pytestmark = pytest.mark.django_db

ENTRY = "refresh-office-snapshots"


@pytest.fixture
def office(client, launch_with_stock):
    """An open launch with ten registrations and three orders, and head office signed in."""
    launch, sku, _, _ = launch_with_stock(online_units=5, customers=10)
    add_orders(launch=launch, sku=sku, pool=location_online_pool(), count=3)
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    return client, launch


def counting_queries(count) -> set[str]:
    """The statements that count the launch's rows (GROUP BY ... COUNT), as run by `count`."""
    with CaptureQueriesContext(connection) as ran:
        count()
    counting = {q["sql"] for q in ran.captured_queries if "COUNT(" in q["sql"]}
    assert counting  # otherwise the assertions below would pass whatever the page did
    return counting


def page_queries(client, url: str) -> tuple[str, set[str]]:
    with CaptureQueriesContext(connection) as ran:
        answer = client.get(url)
    assert answer.status_code == 200
    return answer.text, {q["sql"] for q in ran.captured_queries}


def counted_at(html: str) -> str:
    return re.search(r'data-field="counted-at">Counted at (\d\d:\d\d:\d\d)', html).group(1)


def shown(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


def test_the_overview_serves_the_refreshed_snapshot_without_counting(office):
    client, launch = office
    counting = counting_queries(lambda: launches.launch_overview(launch=launch))
    refreshed = launches.office_snapshots_refresh()
    assert refreshed == [launch]
    UpgradeRegistration.objects.create(
        customer=CustomerFactory(), launch=launch, preferred_sku=launch.skus.get()
    )

    html, ran = page_queries(client, reverse("launch-overview", kwargs={"slug": launch.slug}))

    assert not counting & ran
    assert re.search(r'data-field="registrations">10<', html)  # the snapshot's, not the 11 now
    kept = cache.get(f"launch-overview:{launch.pk}")
    assert counted_at(html) == shown(kept.counted_at)


def test_the_overview_counts_and_keeps_it_when_there_is_no_snapshot(office):
    client, launch = office
    counting = counting_queries(lambda: launches.launch_overview(launch=launch))
    url = reverse("launch-overview", kwargs={"slug": launch.slug})

    html, first = page_queries(client, url)
    _, second = page_queries(client, url)

    assert counting <= first
    assert re.search(r'data-field="registrations">10<', html)
    assert not counting & second  # the first load's count is kept for the next


def test_the_demand_report_serves_the_refreshed_snapshot_without_counting(office):
    client, launch = office
    counting = counting_queries(lambda: demand.demand_vs_supply(launch=launch))
    url = reverse("inventory:demand", kwargs={"slug": launch.slug})
    launches.office_snapshots_refresh()

    html, ran = page_queries(client, url)

    assert not counting & ran
    kept = cache.get(f"demand-snapshot:{launch.pk}")
    assert counted_at(html) == shown(kept.counted_at)


def test_the_demand_report_counts_and_keeps_it_when_there_is_no_snapshot(office):
    client, launch = office
    counting = counting_queries(lambda: demand.demand_vs_supply(launch=launch))
    url = reverse("inventory:demand", kwargs={"slug": launch.slug})

    html, first = page_queries(client, url)
    _, second = page_queries(client, url)

    assert counting <= first
    assert counted_at(html)
    assert not counting & second


@pytest.mark.skipif(not settings.USING_POSTGRES, reason="parallel query is PostgreSQL's")
@pytest.mark.django_db(transaction=True)  # to see that SET LOCAL ends with the recount's own
def test_the_recount_leaves_the_other_cores_to_page_loads(office):
    """Beat's recount scans the launch's orders and registrations several times; with
    PostgreSQL's parallel workers each scan took every core, and page loads waited."""
    _, launch = office
    counting = counting_queries(lambda: launches.launch_overview(launch=launch)) | counting_queries(
        lambda: demand.demand_vs_supply(launch=launch)
    )

    with CaptureQueriesContext(connection) as ran:
        launches.office_snapshots_refresh()
    statements = [q["sql"] for q in ran.captured_queries]
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        after = cursor.fetchone()[0]

    one_core = statements.index("SET LOCAL max_parallel_workers_per_gather = 0")
    assert all(statements.index(sql) > one_core for sql in counting)
    assert after != "0"  # LOCAL: the connection's next work may use them again


def test_the_launches_refreshed_are_those_open_now_or_opened_within_a_day(db):
    now = timezone.now()
    hour, day = datetime.timedelta(hours=1), datetime.timedelta(days=1)

    def launch(slug, opens, closes):
        return LaunchFactory(slug=slug, opens_at=now + opens, closes_at=now + closes)

    watched = [
        launch("open-now", -hour, hour),
        launch("open-for-weeks", -30 * day, 30 * day),
        launch("closed-this-morning", -20 * hour, -19 * hour),
        launch("opened-a-moment-ago", datetime.timedelta(0), 2 * hour),
    ]
    launch("closed-the-day-before", -25 * hour, -24 * hour)
    launch("opens-in-an-hour", hour, 2 * hour)
    launch("long-ago", -60 * day, -59 * day)

    assert {x.slug for x in launches.launches_watched(now=now)} == {x.slug for x in watched}
    assert refresh_office_snapshots.delay().get() == len(watched)
    for x in watched:
        assert cache.get(f"launch-overview:{x.pk}") is not None
        assert cache.get(f"demand-snapshot:{x.pk}") is not None


@pytest.mark.services  # reads the keys' expiry from Redis
def test_beat_runs_the_registered_refresh_more_often_than_its_snapshots_expire(office):
    _, launch = office
    entry = settings.CELERY_BEAT_SCHEDULE[ENTRY]
    assert entry["task"] == refresh_office_snapshots.name
    assert entry["task"] in app.tasks

    launches.office_snapshots_refresh()

    keys = [f"launch-overview:{launch.pk}", f"demand-snapshot:{launch.pk}"]
    server = redis.Redis.from_url(settings.REDIS_URL)
    for key in keys:
        ttl = server.ttl(cache.make_key(key))
        assert launches.REFRESHED_SNAPSHOT_SECONDS - 5 <= ttl <= launches.REFRESHED_SNAPSHOT_SECONDS
        # A late run (beat's interval and then its expiry) still finds the last one kept.
        assert entry["schedule"] + entry["options"]["expires"] < ttl


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_running_the_beat_task_fills_the_cache_the_page_reads(
    launch_with_stock, celery_worker_factory
):
    launch, *_ = launch_with_stock(online_units=5, customers=3)
    worker = celery_worker_factory()
    keys = [f"launch-overview:{launch.pk}", f"demand-snapshot:{launch.pk}"]
    assert cache.get_many(keys) == {}

    app.send_task(settings.CELERY_BEAT_SCHEDULE[ENTRY]["task"])  # as beat sends it, by name

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(cache.get_many(keys)) < len(keys):
        time.sleep(0.2)
    kept = cache.get_many(keys)
    assert set(kept) == set(keys), worker.log()[-3000:]
    assert kept[keys[0]].registrations_total == 3
    assert launches.launch_overview_cached(launch=launch).counted_at == kept[keys[0]].counted_at
