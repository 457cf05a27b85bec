"""A short real rehearsal: the real ASGI front, a real Celery worker, real PostgreSQL.

What the simulator was told (every 202's reference) must be exactly what the database
kept, and the invariants must read 0, with walk-ins selling at the store meanwhile; the
stack's /metrics, scraped during the run and counted by every process into one directory
as make serve does, must agree with the database, and the fairness audit read 0.
"""

import time

import pytest
from django.db import transaction

from orders.models import Order, Ticket
from orders.rehearsal.rehearse import Options, rehearse
from orders.services.rehearsals import rehearsal_start
from orders.tests.api_support import partner_store
from stores.tests.factories import PartnerFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_short_rehearsal_is_acknowledged_exactly_as_the_database_kept_it(
    launch_with_stock, live_front_factory, celery_worker_factory, tmp_path
):
    launch, sku, _store, _people = launch_with_stock(online_units=40, store_units=4, customers=400)
    partner = PartnerFactory(code="cpw")
    partner_store(partner=partner, code="S002", sku=sku, units=6)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    celery_worker_factory(extra_env=env)
    live = live_front_factory(workers=1, extra_env=env)

    summary, page = rehearse(
        Options(
            url=f"http://127.0.0.1:{live.port}",
            launch=launch.slug,
            duration=5,
            peak_rate=60,
            opens_after=1,
            seed=4,
        )
    )

    found = summary["invariants"]
    assert {k: found[k] for k in ("oversold", "lost", "duplicated", "fcfs_violations")} == {
        "oversold": 0,
        "lost": 0,
        "duplicated": 0,
        "fcfs_violations": 0,
    }
    assert found["acknowledged"] > 20
    assert found["acknowledged"] == found["orders_in_database"] == Order.objects.filter(launch=launch).count()
    # The pre-open trickle met a closed launch; after opening people were admitted.
    assert (
        summary["outcomes"].get("launch_not_open", 0) >= 0
        and summary["per_second"]["admissions"][2:] != [0] * 3
    )
    assert Order.objects.filter(launch=launch, status="queued").count() == 0, (
        summary["allocator_drained_after"],
        summary["started_at"],
        list(Order.objects.filter(launch=launch, status="queued").values("sequence", "created_at")),
        list(Order.objects.filter(launch=launch).order_by("-sequence").values_list("sequence", "status")[:4]),
    )
    # Walk-ins queued at both stores at opening and bought what the stores held.
    sold = {m["store"]: m["sold"] for m in summary["walk_ins"]}
    assert sold and sum(sold.values()) == Ticket.objects.filter(launch=launch, status="served").count() > 0
    # /metrics was read during the run, and every counter agrees with the database.
    compared = summary["metrics_vs_database"]
    assert compared["scraped"] and len(compared["over_time"]["points"]) >= 3, compared["over_time"]
    disagreeing = [row for row in compared["rows"] if row["status"] == "DISAGREE"]
    assert compared["disagreements"] == 0 and not disagreeing, disagreeing
    rows = {row["figure"]: row for row in compared["rows"]}
    assert rows["orders admitted: all"]["metrics"] == found["orders_in_database"]
    assert rows["emails sent"]["database"] > 0 and compared["outbox_settled"]
    assert found["metrics_disagreements"] == 0
    # The fairness audit, as head office's page runs it, after the drain.
    audit = summary["fairness_audit"]
    assert audit["violations"] == 0 == found["fairness_audit_violations"]
    assert audit["page"].endswith(f"/office/launches/{launch.slug}/fairness/")
    assert "Metrics vs database: 0 disagreements" in page and "Fairness audit: 0 violations" in page
    # Self-contained: charts inline, nothing fetched, no script.
    assert "<svg" in page and not any(tag in page for tag in ("<script", "<link", "src=", "<img"))


def test_a_rehearsal_started_by_head_office_runs_in_a_real_worker_and_keeps_its_report(
    launch_with_stock, live_front_factory, celery_worker_factory
):
    launch, sku, _store, _people = launch_with_stock(online_units=10, customers=120)
    PartnerFactory(code="cpw")
    celery_worker_factory(concurrency=2)  # one runs the rehearsal, the other the allocator
    live = live_front_factory(workers=1)
    options = Options(
        url=f"http://127.0.0.1:{live.port}",
        launch=launch.slug,
        duration=3,
        peak_rate=30,
        opens_after=1,
        seed=5,
    )
    with transaction.atomic():
        rehearsal = rehearsal_start(launch=launch, options=options.as_dict())

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        rehearsal.refresh_from_db()
        if rehearsal.status in ("done", "failed"):
            break
        time.sleep(0.5)
    assert rehearsal.status == "done", rehearsal.error
    found = rehearsal.summary["invariants"]
    assert (
        found["acknowledged"]
        == found["orders_in_database"]
        == Order.objects.filter(launch=launch).count()
        > 0
    )
    assert rehearsal.progress["lost"] == 0 and "<svg" in rehearsal.report_html
