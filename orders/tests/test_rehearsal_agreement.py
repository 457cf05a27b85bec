"""The rehearsal's "metrics vs database": the stack's counters over the run against the
database's rows and what the simulator heard. A sound run agrees; each kind of
disagreement is reported as one, and only unanswered requests excuse a difference."""

import pytest
from django.utils import timezone

from orders.rehearsal.agreement import (
    AGREE,
    DISAGREE,
    EXPLAINED,
    agreement,
    agreement_rows,
    database_counts,
    delta,
    simulator_counts,
)
from orders.rehearsal.crowd import Customer, Person
from orders.rehearsal.driver import refusals_count
from orders.rehearsal.report import render_html
from orders.rehearsal.sampler import Scrape, metrics_parse
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate

BEFORE = {
    "launchday_orders_admitted_total{path=single}": 5.0,
    "launchday_orders_refused_total{reason=launch_not_open}": 2.0,
    "launchday_emails_total{outcome=sent}": 5.0,
    "launchday_batch_size_sum{stage=allocation}": 5.0,
}
# The run: 10 singles and 40 bulk items admitted, 7 refused while not open, 3 shed.
AFTER = {
    "launchday_orders_admitted_total{path=single}": 15.0,
    "launchday_orders_admitted_total{path=bulk}": 40.0,
    "launchday_orders_refused_total{reason=launch_not_open}": 9.0,
    "launchday_orders_refused_total{reason=too_many_in_flight}": 3.0,
    "launchday_emails_total{outcome=sent}": 55.0,
    "launchday_batch_size_sum{stage=allocation}": 50.0,
    "launchday_orders_queued": 0.0,
    "launchday_outbox_depth": 0.0,
    "launchday_allocator_lag_seconds": 0.0,
}
DATABASE = {
    "admitted": {"single": 10, "bulk": 40, "web": 0},
    "other_launches": 0,
    "allocator_moves": 50,
    "emails_sent": 50,
    "queued_now": 0,
    "allocator_lag_now": 0.0,
    "outbox_waiting_now": 0,
}
SIMULATOR = {
    "admitted": {"single": 10, "bulk": 40},
    "refused": {"launch_not_open": 7, "too_many_in_flight": 3},
    "unanswered_orders": 0,
}


def rows_of(*, run=None, after=AFTER, database=DATABASE, simulator=SIMULATOR, own=5):
    rows = agreement_rows(
        run=delta(BEFORE, AFTER) if run is None else run,
        after=after,
        database=database,
        simulator=simulator,
        own_allocator_moves=own,
    )
    return {row.figure: row for row in rows}


def test_a_sound_run_agrees_row_by_row():
    rows = rows_of()
    assert {figure: row.status for figure, row in rows.items()} == {
        "orders admitted: single": AGREE,
        "orders admitted: bulk": AGREE,
        "orders admitted: web": AGREE,
        "orders admitted: all": AGREE,
        "orders refused: launch_not_open": AGREE,
        "orders refused: too_many_in_flight": AGREE,
        "allocator moves (waitlisted or allocated)": AGREE,
        "emails sent": AGREE,
        "orders queued now (gauge)": AGREE,
        "outbox depth now (gauge)": AGREE,
        "allocator lag now (gauge, s)": AGREE,
    }
    single = rows["orders admitted: single"]
    assert (single.metrics, single.database, single.simulator) == (10.0, 10, 10)
    # The rehearsal's own allocator calls (5 moves) are added to the stack's 45.
    assert rows["allocator moves (waitlisted or allocated)"].metrics == 50


def test_a_counter_one_short_of_the_database_disagrees():
    database = {**DATABASE, "admitted": {"single": 11, "bulk": 40, "web": 0}}
    simulator = {**SIMULATOR, "admitted": {"single": 11, "bulk": 40}}
    rows = rows_of(database=database, simulator=simulator)
    assert rows["orders admitted: single"].status == DISAGREE
    assert rows["orders admitted: all"].status == DISAGREE
    assert rows["orders admitted: bulk"].status == AGREE
    # Emails and allocator moves are held to the database exactly too.
    assert rows_of(database={**DATABASE, "emails_sent": 49})["emails sent"].status == DISAGREE
    assert rows_of(own=0)["allocator moves (waitlisted or allocated)"].status == DISAGREE
    assert rows_of(database={**DATABASE, "queued_now": 2})["orders queued now (gauge)"].status == DISAGREE


def test_a_refusal_the_simulator_heard_but_the_stack_did_not_count_disagrees():
    simulator = {**SIMULATOR, "refused": {"launch_not_open": 7, "too_many_in_flight": 4}}
    assert rows_of(simulator=simulator)["orders refused: too_many_in_flight"].status == DISAGREE
    # A reason the stack never counted at all is a row of its own, disagreeing.
    simulator = {**SIMULATOR, "refused": {**SIMULATOR["refused"], "throttled": 1}}
    assert rows_of(simulator=simulator)["orders refused: throttled"].status == DISAGREE


def test_what_the_stack_counted_beyond_what_was_heard_is_excused_only_by_unanswered_requests():
    # Two requests got no answer: one was admitted (the replay found it), one shed.
    heard = {
        "admitted": {"single": 9, "bulk": 40},
        "refused": {"launch_not_open": 7, "too_many_in_flight": 2},
    }
    rows = rows_of(simulator={**heard, "unanswered_orders": 2})
    assert rows["orders admitted: single"].status == AGREE  # the counter equals the database
    assert rows["orders refused: too_many_in_flight"].status == EXPLAINED
    assert "counted but not heard, all rows" not in rows

    rows = rows_of(simulator={**heard, "unanswered_orders": 1})
    assert rows["orders refused: too_many_in_flight"].status == DISAGREE
    assert rows["counted but not heard, all rows"].status == DISAGREE


def test_without_a_scrape_nothing_is_compared_and_nothing_passes():
    compared = agreement(
        before=None, after=AFTER, scrapes=[], database=DATABASE, simulator=SIMULATOR,
        own_allocator_moves=0, outbox_settled=True,
    )  # fmt: skip
    assert compared["scraped"] is False and "disagreements" not in compared


def test_the_scrapes_during_the_run_become_points_and_gaps():
    scrapes = [
        Scrape(t=1.0, series={**BEFORE, "launchday_orders_admitted_total{path=single}": 8.0,
                              "launchday_orders_queued": 3.0}),
        Scrape(t=2.0, series=None, error="ReadTimeout"),
        Scrape(t=3.0, series=AFTER),
    ]  # fmt: skip
    compared = agreement(
        before=BEFORE, after=AFTER, scrapes=scrapes, database=DATABASE, simulator=SIMULATOR,
        own_allocator_moves=5, outbox_settled=True,
    )  # fmt: skip
    points = compared["over_time"]["points"]
    assert [(p["t"], p["admitted"], p["queued"]) for p in points] == [(1.0, 3.0, 3.0), (3.0, 50.0, 0.0)]
    assert points[1]["admitted_by_path"] == {"single": 10.0, "bulk": 40.0}
    assert points[1]["refused_by_reason"] == {"launch_not_open": 7.0, "too_many_in_flight": 3.0}
    assert points[1]["emails_sent"] == 50.0
    assert compared["over_time"]["gaps"] == [{"t": 2.0, "error": "ReadTimeout"}]
    assert compared["disagreements"] == 0


def test_metrics_text_is_read_per_series_with_its_labels():
    text = (
        "# HELP launchday_orders_admitted_total Orders admitted.\n"
        "# TYPE launchday_orders_admitted_total counter\n"
        'launchday_orders_admitted_total{path="single"} 12.0\n'
        'launchday_orders_admitted_total{path="bulk"} 40.0\n'
        "# HELP launchday_batch_size Orders per batch.\n"
        "# TYPE launchday_batch_size histogram\n"
        'launchday_batch_size_bucket{le="1.0",stage="allocation"} 1.0\n'
        'launchday_batch_size_bucket{le="+Inf",stage="allocation"} 2.0\n'
        'launchday_batch_size_sum{stage="allocation"} 52.0\n'
        'launchday_batch_size_count{stage="allocation"} 2.0\n'
        "# HELP launchday_orders_queued Orders admitted and not yet settled.\n"
        "# TYPE launchday_orders_queued gauge\n"
        "launchday_orders_queued 7.0\n"
        "# HELP python_gc_objects_collected_total Objects collected.\n"
        "# TYPE python_gc_objects_collected_total counter\n"
        'python_gc_objects_collected_total{generation="0"} 99.0\n'
    )
    assert metrics_parse(text) == {
        "launchday_orders_admitted_total{path=single}": 12.0,
        "launchday_orders_admitted_total{path=bulk}": 40.0,
        "launchday_batch_size_sum{stage=allocation}": 52.0,
        "launchday_batch_size_count{stage=allocation}": 2.0,
        "launchday_orders_queued": 7.0,
    }


def person(kind="single", customers=1) -> Person:
    return Person(
        number=0,
        arrived=0.0,
        kind=kind,
        customers=[
            Customer(account=f"D{n:07d}", postcode="X", sku="S", store=None) for n in range(customers)
        ],
        patience=10,
    )


def test_the_simulator_counts_refusals_as_the_stack_does_and_unanswered_bulks_by_their_items():
    single = person()
    refusals_count(
        single, 503, "overloaded", {"error": {"code": "overloaded", "details": {"reason": "queued_too_long"}}}
    )
    refusals_count(single, 409, "launch_not_open", {"error": {"code": "launch_not_open", "details": {}}})
    refusals_count(single, 503, "", {})  # no envelope: not the API's answer
    refusals_count(single, 202, "", {"reference": "LD1"})
    single.answers = [(0.1, -1, "no_answer"), (0.2, 202, "")]
    single.references = ["LD1"]
    bulk = person("bulk", customers=3)
    results = [
        {"index": 0, "status": 202, "order": {"reference": "LD2"}},
        {"index": 1, "status": 409, "error": {"code": "already_ordered", "details": {}}},
        {"index": 2, "status": 422, "error": {"code": "not_eligible", "details": {}}},
    ]
    refusals_count(bulk, 200, "", {"results": results})
    bulk.answers = [(0.3, -1, "no_answer"), (0.5, 200, "")]
    bulk.references = ["LD2"]
    bulk.replay_unanswered = 1

    counted = simulator_counts([single, bulk])

    assert counted["refused"] == {
        "queued_too_long": 1, "launch_not_open": 1, "http_503": 1, "already_ordered": 1, "not_eligible": 1,
    }  # fmt: skip
    assert counted["admitted"] == {"single": 1, "bulk": 1}
    # One single without an answer, and a bulk of three twice (a try and its replay).
    assert counted["unanswered_orders"] == 1 + 2 * 3
    assert counted["unanswered_requests"] == 3


@pytest.mark.django_db
def test_the_database_is_counted_by_the_counters_paths_and_a_disagreement_breaks_the_report(
    launch_with_stock,
):
    launch, sku, _store, people = launch_with_stock(online_units=1, customers=4)
    since = timezone.now()
    for n, (channel, key) in enumerate(
        [("partner", "k-1"), ("partner", None), ("partner", None), ("online", None)]
    ):
        order_admit(
            launch=launch.slug, customer=people[n].account_number, sku=sku.code, fulfilment="delivery",
            channel=channel, idempotency_key=key,
        )  # fmt: skip
    launch_allocate(launch_id=launch.pk)  # one allocated, three waitlisted

    counted = database_counts(launch=launch, since=since)

    assert counted["admitted"] == {"single": 1, "bulk": 2, "web": 1}
    assert counted["allocator_moves"] == 4 and counted["queued_now"] == 0
    assert counted["other_launches"] == 0

    # A report whose counters missed one bulk item says so, in its invariants too.
    from orders.rehearsal.report import invariants_broken

    after = {**AFTER, "launchday_orders_admitted_total{path=bulk}": 1.0,
             "launchday_orders_admitted_total{path=web}": 1.0,
             "launchday_orders_admitted_total{path=single}": 6.0}  # fmt: skip
    compared = agreement(
        before=BEFORE, after=after, scrapes=[], database=counted,
        simulator={"admitted": {"single": 1, "bulk": 2}, "refused": SIMULATOR["refused"], "unanswered_orders": 0},
        own_allocator_moves=0, outbox_settled=True,
    )  # fmt: skip
    statuses = {row["figure"]: row["status"] for row in compared["rows"]}
    assert statuses["orders admitted: bulk"] == DISAGREE and statuses["orders admitted: single"] == AGREE
    assert invariants_broken({"oversold": 0, "lost": 0, "duplicated": 0, "fcfs_violations": 0,
                              "metrics_disagreements": compared["disagreements"]})  # fmt: skip
    assert not invariants_broken({"oversold": 0, "lost": 0, "duplicated": 0, "fcfs_violations": 0,
                                  "metrics_disagreements": 0, "fairness_audit_violations": 0})  # fmt: skip
    summary_page = render_html_with(compared)
    assert "<strong>DISAGREE</strong>" in summary_page and "Invariants: all BROKEN" in summary_page


def render_html_with(compared: dict) -> str:
    """A minimal summary around the section, to see how the page shows a disagreement."""
    summary = {
        "launch": "iphone-3g",
        "per_second": {"arrivals": [1], "admissions": [1], "refusals": [0], "rejections": [0]},
        "invariants": {
            "oversold": 0, "lost": 0, "duplicated": 0, "fcfs_violations": 0, "acknowledged": 1,
            "orders_in_database": 1, "metrics_disagreements": compared["disagreements"],
        },
        "samples": [], "fairness": {"jain_while_units_lasted": None, "seconds_while_units_lasted": 0,
                                    "fair_start_seconds": 0, "jain_fair_start_window": None},
        "chance_by_arrival_second": [], "options": {}, "shape": {}, "people": 1, "people_by_kind": {},
        "outcomes": {}, "requests": 1, "answers_by_status": {}, "requests_unanswered": 0,
        "acknowledged_on_replay": 0, "admitted_peak_per_second": 1, "capacity": None, "spike": {},
        "time_to_verdict": {"p50": 0, "p99": 0}, "client_lag": {"p99": 0, "max": 0}, "queue_depth_max": 0,
        "allocator_lag_max": 0, "sold_out_at": {}, "emails": {}, "walk_ins": [], "finished_after": 1,
        "figures_match_database": True, "metrics_vs_database": compared, "fairness_audit": None,
    }  # fmt: skip
    return render_html(summary)


@pytest.mark.django_db(transaction=True)
def test_the_last_scrape_waits_while_emails_go_out_and_gives_up_once_they_stop():
    """A 60 s launch leaves more than a minute of sending: the wait follows the sending
    (here a thread marks one email sent every 0.3 s), and a stack whose mail goes nowhere
    is given up on after `stalled_after`, reported as not settled."""
    import threading
    import time

    from customers.models import Message
    from customers.tests.factories import CustomerFactory
    from orders.rehearsal.rehearse import outbox_settled

    since = timezone.now()
    customer = CustomerFactory()
    ids = [
        Message.objects.create(
            kind=Message.Kind.ORDER_RECEIVED, dedupe_key=f"rehearsal:{n}", customer=customer
        ).pk
        for n in range(6)
    ]

    def send_slowly() -> None:
        from django.db import connection

        for pk in ids:
            time.sleep(0.3)
            Message.objects.filter(pk=pk).update(status=Message.Status.SENT)
        connection.close()

    sender = threading.Thread(target=send_slowly)
    sender.start()
    # Longer than the stall bound in all (6 x 0.3 s > 1 s), yet each email comes within it.
    took, settled = outbox_settled(since=since, timeout=30, stalled_after=1.0)
    sender.join()
    assert settled and took >= 1.5

    Message.objects.create(kind=Message.Kind.ORDER_RECEIVED, dedupe_key="rehearsal:stuck", customer=customer)
    took, settled = outbox_settled(since=since, timeout=30, stalled_after=1.0)
    assert not settled and 1.0 <= took < 5


def test_a_rehearsal_refuses_to_start_against_a_stack_that_redirects_or_is_not_there():
    """Production redirects plain HTTP to HTTPS: a crowd sent there hears nothing but
    redirects. The rehearsal says so before it moves the launch's opening."""
    import http.server
    import socket
    import threading

    from orders.rehearsal.rehearse import stack_preflight

    class Redirects(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(301)
            self.send_header("Location", "https://127.0.0.1/api/v1/orders/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirects)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ValueError, match="SECURE_SSL_REDIRECT=0"):
            stack_preflight(url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ValueError, match="Nothing answers"):
        stack_preflight(url=f"http://127.0.0.1:{closed}")
