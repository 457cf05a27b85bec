"""The rehearsal report from a small recorded run: figures from the recording, checked
against the database, and invariants that catch what they name."""

import datetime

import pytest
from django.utils import timezone

from orders.models import Order
from orders.rehearsal.arrivals import Shape
from orders.rehearsal.crowd import Behaviour, Customer, Person
from orders.rehearsal.driver import CrowdRun
from orders.rehearsal.report import capacity_while_refusing, invariants, jain, render_html, summarise
from orders.rehearsal.sampler import Sample
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.tests.invariants import fcfs_violations

pytestmark = pytest.mark.django_db

SHAPE = Shape(duration=4, opens_after=1, peak_rate=10, crowd=6)


def recorded_run(people_refs: list[tuple[float, list[str], list[tuple[float, int, str]]]]) -> CrowdRun:
    run = CrowdRun(finished_at=4.0)
    for n, (arrived, refs, answers) in enumerate(people_refs):
        person = Person(
            number=n,
            arrived=arrived,
            kind="single",
            customers=[Customer(account=f"D{n:07d}", postcode="X", sku="S", store=None)],
            patience=10,
            answers=answers,
            references=refs,
            verdict_at=answers[-1][0],
            outcome="admitted" if refs else answers[-1][2],
            orders=1,
        )
        run.people.append(person)
    return run


def admitted(launch, sku, people, n: int) -> str:
    customer = people[n]
    admission = order_admit(
        launch=launch.slug,
        customer=customer.account_number,
        sku=sku.code,
        fulfilment="delivery",
        channel="online",
    )
    return admission.order.reference


def test_a_recorded_run_reports_per_second_figures_chance_and_zero_invariants(launch_with_stock):
    launch, sku, _store, people = launch_with_stock(online_units=2, customers=5)
    since = timezone.now()
    refs = [admitted(launch, sku, people, n) for n in range(3)]
    launch_allocate(launch_id=launch.pk)
    run = recorded_run(
        [
            (0.5, [], [(0.6, 409, "launch_not_open")]),
            (1.1, [refs[0]], [(1.2, 202, "")]),
            (1.3, [refs[1]], [(1.4, 503, "overloaded"), (2.5, 202, "")]),
            (2.2, [refs[2]], [(2.3, 202, "")]),
        ]
    )
    samples = [
        Sample(t=1.0, queued=3, waitlisted=0, allocated=0, allocator_lag=0.4, online_available={"S": 2},
               emails_sent=0, emails_waiting=3),
        Sample(t=2.5, queued=0, waitlisted=1, allocated=2, allocator_lag=0.0, online_available={"S": 0},
               emails_sent=3, emails_waiting=0),
    ]  # fmt: skip

    summary = summarise(
        crowd=run, samples=samples, mornings=[], launch=launch, since=since, shape=SHAPE,
        behaviour=Behaviour(), options={"fair_start": 0},
    )  # fmt: skip

    assert summary["per_second"]["arrivals"] == [1, 2, 1, 0]
    assert summary["per_second"]["admissions"] == [0, 1, 2, 0]
    assert summary["per_second"]["refusals"] == [0, 1, 0, 0]
    assert summary["time_to_verdict"]["p50"] == pytest.approx(0.1)
    assert summary["sold_out_at"] == {"S": 2.5}
    # Two units: the first two admitted (second 1) got one each, the third (second 2) waits.
    chance = {c["second"]: c["chance"] for c in summary["chance_by_arrival_second"]}
    assert chance == {0: 0.0, 1: 1.0, 2: 0.0}
    assert summary["invariants"] == {
        "oversold": 0, "lost": 0, "duplicated": 0, "fcfs_violations": 0,
        "acknowledged": 3, "orders_in_database": 3,
        "kept_not_acknowledged": {"with_idempotency_key": 0, "without (bulk)": 0},
    }  # fmt: skip
    assert summary["figures_match_database"] is True
    page = render_html(summary)
    assert page.count("<svg") == 6 and "Invariants: all hold" in page


def test_an_acknowledged_order_missing_from_the_database_is_counted_lost(launch_with_stock):
    launch, sku, _store, people = launch_with_stock(online_units=2, customers=2)
    since = timezone.now()
    ref = admitted(launch, sku, people, 0)
    run = recorded_run([(1.1, [ref], [(1.2, 202, "")]), (1.2, ["LDNOTINTHEDB1"], [(1.3, 202, "")])])
    summary = summarise(
        crowd=run, samples=[], mornings=[], launch=launch, since=since, shape=SHAPE,
        behaviour=Behaviour(), options={},
    )  # fmt: skip
    assert summary["invariants"]["lost"] == 1
    assert summary["figures_match_database"] is False
    assert "Invariants: all BROKEN" in render_html(summary)


def test_jains_index_and_the_capacity_read_while_refusing():
    assert jain([0.5, 0.5, 0.5]) == pytest.approx(1.0)
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert capacity_while_refusing(admissions=[5, 10, 12, 8, 3], refusals=[0, 4, 0, 2, 0]) == 10.0
    assert capacity_while_refusing(admissions=[5, 10], refusals=[0, 0]) is None


def test_with_a_fair_start_the_turn_is_the_draw_not_the_sequence(launch_with_stock):
    """Six orders in a 30 s opening draw, drawn in the reverse of their arrival, three units:
    the last three to arrive are served, rightly. The sequence check of the tests calls
    that out of turn; the rehearsal's invariant follows the draw, as the allocator does."""
    launch, sku, _store, people = launch_with_stock(online_units=3, customers=6)
    since = timezone.now()
    launch.opens_at = timezone.now() - datetime.timedelta(minutes=5)
    launch.fair_start_seconds = 30
    launch.save(update_fields=["opens_at", "fair_start_seconds"])
    refs = [
        order_admit(
            launch=launch.slug, customer=p.account_number, sku=sku.code, fulfilment="delivery",
            channel="online", now=launch.opens_at + datetime.timedelta(seconds=n),
        ).order.reference
        for n, p in enumerate(people)
    ]  # fmt: skip
    for n, ref in enumerate(refs):
        Order.objects.filter(reference=ref).update(fair_draw=1000 - n)
    launch_allocate(launch_id=launch.pk)
    served = list(
        Order.objects.filter(status="allocated").order_by("sequence").values_list("reference", flat=True)
    )
    assert served == refs[3:]

    assert fcfs_violations(launch_id=launch.pk)  # by sequence: out of turn
    assert invariants(launch=launch, acknowledged=refs, since=since)["fcfs_violations"] == 0
    # Served against the draw (the first drawn left waiting) is a violation all the same.
    first, last = Order.objects.get(reference=refs[5]), Order.objects.get(reference=refs[0])
    Order.objects.filter(pk=first.pk).update(status="waitlisted", allocated_at=None)
    Order.objects.filter(pk=last.pk).update(status="allocated", allocated_at=timezone.now())
    assert invariants(launch=launch, acknowledged=refs, since=since)["fcfs_violations"] > 0
