"""/metrics against the database and the simulator: does the stack count what it did?

Three witnesses of one run. The stack's counters (config.metrics, scraped before the
crowd and after the allocator drained: the difference is the run's), the database (what
was kept), and the simulator (what it was told). The comparison is plain data in, rows
out (`agreement_rows`), so a test can hand it a disagreement and see it reported.

What "agree" means, row by row:

- Counters against the database (orders admitted by path, allocator moves, emails sent):
  equal, exactly. Each counter is incremented once per row written, after its commit,
  and the last scrape comes after the allocator and the outbox drained, so nothing is
  in flight. The counters count every launch; orders of another launch admitted during
  the run (none on a rehearsal database) are added to the database's side and said so.
- The simulator against the stack (acknowledged orders, refusals by reason): the stack
  may have counted more than the simulator heard, never less. A request that got no
  answer (the client's timeout, a reset) may still have been admitted or refused and
  counted; so the differences, added up over every row, must stay within the orders
  those unanswered requests asked for (a bulk's count as its items). A refusal the
  simulator heard that the stack did not count is a disagreement, except an answer
  without the API's envelope (uvicorn's own, a proxy's: `http_<status>`), which nothing
  of the stack counts by design.
- Gauges at the end (orders queued, outbox depth) are read from the database at scrape
  time: equal to the database's count a moment later, exactly, since nothing moves after
  the drain. Allocator lag is an age: within a second.
- Walk-ins are not admissions (tickets, served at the counter): no counter, left out.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.db.models import Count, Min, Q
from django.utils import timezone

from customers.models import Message
from inventory.models import Launch
from orders.models import Order

ADMITTED = "launchday_orders_admitted_total"
REFUSED = "launchday_orders_refused_total"
EMAILS = "launchday_emails_total"
BATCH_SUM = "launchday_batch_size_sum"
QUEUED = "launchday_orders_queued"
LAG = "launchday_allocator_lag_seconds"
OUTBOX = "launchday_outbox_depth"

# The counters' `path` label, and how the database tells the same orders apart.
PATHS = {
    "single": "API single orders (POST /api/v1/orders/): partner channel, with an Idempotency-Key",
    "bulk": "API bulk items (POST /api/v1/orders/bulk): partner channel, no Idempotency-Key",
    "web": "the customers' order form: online channel",
}
LAG_TOLERANCE = 1.0

AGREE, EXPLAINED, DISAGREE, UNCOUNTED = "agree", "explained", "DISAGREE", "not counted by the stack"


@dataclass
class Row:
    figure: str
    metrics: float | None
    database: float | None
    simulator: float | None
    status: str
    note: str = ""


def by_label(series: dict[str, float], name: str, label: str) -> dict[str, float]:
    """{label value: value} for the series `name{label=...}` (other labels summed over)."""
    found: dict[str, float] = {}
    prefix = name + "{"
    for key, value in series.items():
        if not key.startswith(prefix):
            continue
        labels = dict(part.split("=", 1) for part in key[len(prefix) : -1].split(",") if "=" in part)
        if label in labels:
            found[labels[label]] = found.get(labels[label], 0.0) + value
    return found


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each series' change over the run (a series new since `before` started at 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def simulator_counts(people: Iterable) -> dict:
    """What the simulator was told: orders acknowledged by path, refusals by reason, and
    the orders asked for by requests that got no answer (the slack the stack may have
    counted beyond what was heard)."""
    acknowledged: dict[str, set[str]] = {"single": set(), "bulk": set()}
    refused: dict[str, int] = {}
    unanswered_orders = unanswered_requests = 0
    for person in people:
        path = "bulk" if person.kind == "bulk" else "single"
        acknowledged[path].update(person.references)
        for reason, n in person.refused.items():
            refused[reason] = refused.get(reason, 0) + n
        per_request = len(person.customers) if person.kind == "bulk" else 1
        unanswered = sum(1 for _, status, _ in person.answers if status < 0) + person.replay_unanswered
        unanswered_orders += unanswered * per_request
        unanswered_requests += unanswered
    return {
        "admitted": {path: len(refs) for path, refs in acknowledged.items()},
        "refused": refused,
        "unanswered_orders": unanswered_orders,
        "unanswered_requests": unanswered_requests,
    }


def database_counts(*, launch: Launch, since: datetime.datetime) -> dict:
    """What the database kept since the run began, in the counters' terms."""
    run = Order.objects.filter(created_at__gte=since).exclude(channel=Order.Channel.STORE)
    mine = run.filter(launch=launch)
    paths = mine.aggregate(
        single=Count("pk", filter=Q(channel=Order.Channel.PARTNER, idempotency_key__isnull=False)),
        bulk=Count("pk", filter=Q(channel=Order.Channel.PARTNER, idempotency_key__isnull=True)),
        web=Count("pk", filter=Q(channel=Order.Channel.ONLINE)),
        # Each allocator move stamps its order: waitlisted_at when it must wait, allocated_at
        # when it gets a unit (from the queue or later from the waitlist, a second move).
        waitlisted=Count("pk", filter=Q(waitlisted_at__isnull=False)),
        allocated=Count("pk", filter=Q(allocated_at__isnull=False)),
    )
    queued = Order.objects.filter(status=Order.Status.QUEUED).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    oldest = queued["oldest"]
    return {
        "admitted": {path: paths[path] for path in PATHS},
        "other_launches": run.exclude(launch=launch).count(),
        "allocator_moves": paths["waitlisted"] + paths["allocated"],
        # sent_at, not created_at: an email of an earlier order sent during the run counts too.
        "emails_sent": Message.objects.filter(status=Message.Status.SENT, sent_at__gte=since).count(),
        "queued_now": queued["n"],
        "allocator_lag_now": (timezone.now() - oldest).total_seconds() if oldest else 0.0,
        "outbox_waiting_now": Message.objects.filter(
            status__in=(Message.Status.PENDING, Message.Status.SENDING)
        ).count(),
    }


def agreement_rows(
    *,
    run: dict[str, float],
    after: dict[str, float],
    database: dict,
    simulator: dict,
    own_allocator_moves: int = 0,
    outbox_settled: bool = True,
) -> list[Row]:
    """The table: `run` is the counters' change over the run, `after` the last scrape
    (for the gauges); `own_allocator_moves` are the moves the rehearsal's own allocator
    calls made in a process whose counters the stack's /metrics does not add up."""
    rows: list[Row] = []
    admitted = by_label(run, ADMITTED, "path")
    slack = simulator["unanswered_orders"]
    unheard = 0  # what the stack counted beyond what the simulator heard, over every row
    other = database.get("other_launches", 0)

    total_counted = sum(admitted.values())
    total_kept = sum(database["admitted"].values())
    # Orders of another launch admitted meanwhile (none on a rehearsal database) are in the
    # counters but not in this launch's rows: the path they took is not known here.
    others_explain = bool(other) and total_counted == total_kept + other
    for path, meaning in PATHS.items():
        counted, kept = admitted.get(path, 0.0), database["admitted"].get(path, 0)
        told = simulator["admitted"].get(path)
        status, notes = AGREE, [meaning]
        if counted > kept and others_explain:
            status = EXPLAINED
            notes.append("the difference is among the orders of other launches")
        elif counted != kept:
            status = DISAGREE
        if told is not None:
            if told > kept:
                status = DISAGREE
                notes.append("the simulator was told of orders the database does not hold")
            elif told < kept:
                unheard += kept - told
                notes.append(f"{kept - told} kept without the simulator hearing of them (no answer came)")
        rows.append(Row(f"orders admitted: {path}", counted, kept, told, status, "; ".join(notes)))
    status, note = (AGREE if total_counted == total_kept else DISAGREE), "every path, this launch"
    if others_explain:
        status, note = (
            EXPLAINED,
            f"the counters also count {other} orders of other launches since the run began",
        )
    told_total = sum(simulator["admitted"].values())
    rows.append(Row("orders admitted: all", total_counted, total_kept, told_total, status, note))

    refused = by_label(run, REFUSED, "reason")
    for reason in sorted(set(refused) | set(simulator["refused"])):
        counted, told = refused.get(reason, 0.0), simulator["refused"].get(reason, 0)
        if reason.startswith("http_"):
            status, note = UNCOUNTED, "an answer without the API's envelope: nothing of the stack counts it"
        elif counted == told:
            status, note = AGREE, ""
        elif counted > told:
            unheard += counted - told
            status, note = EXPLAINED, f"{counted - told:g} counted but not heard: a request without an answer"
        else:
            status, note = DISAGREE, "the simulator was refused more often than the stack counted"
        rows.append(Row(f"orders refused: {reason}", counted, None, told, status, note))
    if unheard > slack:
        for row in rows:
            if row.status == EXPLAINED and row.figure.startswith("orders refused"):
                row.status = DISAGREE
        rows.append(
            Row(
                "counted but not heard, all rows",
                unheard,
                None,
                slack,
                DISAGREE,
                f"more than the {slack} orders that requests without an answer asked for",
            )
        )

    moves = by_label(run, BATCH_SUM, "stage").get("allocation", 0.0) + own_allocator_moves
    rows.append(
        Row(
            "allocator moves (waitlisted or allocated)",
            moves,
            database["allocator_moves"],
            None,
            AGREE if moves == database["allocator_moves"] else DISAGREE,
            f"includes {own_allocator_moves} made by the rehearsal's own allocator calls"
            if own_allocator_moves
            else "",
        )
    )
    sent = by_label(run, EMAILS, "outcome").get("sent", 0.0)
    rows.append(
        Row(
            "emails sent",
            sent,
            database["emails_sent"],
            None,
            AGREE if sent == database["emails_sent"] else DISAGREE,
            ""
            if outbox_settled
            else "the outbox had not drained: emails were still being sent at the scrape",
        )
    )
    for figure, name, kept in (
        ("orders queued now (gauge)", QUEUED, database["queued_now"]),
        ("outbox depth now (gauge)", OUTBOX, database["outbox_waiting_now"]),
    ):
        gauge = after.get(name)
        rows.append(Row(figure, gauge, kept, None, AGREE if gauge == kept else DISAGREE, "every launch"))
    gauge = after.get(LAG)
    kept_lag = round(database["allocator_lag_now"], 3)
    close = gauge is not None and abs(gauge - kept_lag) <= LAG_TOLERANCE
    rows.append(
        Row(
            "allocator lag now (gauge, s)",
            gauge,
            kept_lag,
            None,
            AGREE if close else DISAGREE,
            f"an age, read moments apart: within {LAG_TOLERANCE:g} s",
        )
    )
    return rows


def over_time(scrapes: list, before: dict[str, float] | None) -> dict:
    """The scrapes during the run as chart points: orders admitted by the counters since
    the run began, and the gauges; a failed scrape is a gap."""
    admitted_base = by_label(before or {}, ADMITTED, "path")
    refused_base = by_label(before or {}, REFUSED, "reason")
    points, gaps = [], []
    for scrape in scrapes:
        if scrape.series is None:
            gaps.append({"t": scrape.t, "error": scrape.error})
            continue
        admitted = {
            k: v - admitted_base.get(k, 0.0) for k, v in by_label(scrape.series, ADMITTED, "path").items()
        }
        refused = {
            k: v - refused_base.get(k, 0.0) for k, v in by_label(scrape.series, REFUSED, "reason").items()
        }
        points.append(
            {
                "t": scrape.t,
                "admitted": sum(admitted.values()),
                "admitted_by_path": admitted,
                "refused": sum(refused.values()),
                "refused_by_reason": refused,
                "emails_sent": by_label(scrape.series, EMAILS, "outcome").get("sent", 0.0)
                - by_label(before or {}, EMAILS, "outcome").get("sent", 0.0),
                "queued": scrape.series.get(QUEUED),
                "allocator_lag": scrape.series.get(LAG),
                "outbox_depth": scrape.series.get(OUTBOX),
                "seconds": scrape.seconds,
            }
        )
    return {"points": points, "gaps": gaps}


def agreement(
    *,
    before: dict[str, float] | None,
    after: dict[str, float] | None,
    scrapes: list,
    database: dict,
    simulator: dict,
    own_allocator_moves: int,
    outbox_settled: bool,
) -> dict:
    """The report's "metrics vs database" section (JSON-ready)."""
    if before is None or after is None:
        return {
            "scraped": False,
            "note": "/metrics did not answer before or after the run: nothing to compare",
            "over_time": over_time(scrapes, before),
        }
    rows = agreement_rows(
        run=delta(before, after),
        after=after,
        database=database,
        simulator=simulator,
        own_allocator_moves=own_allocator_moves,
        outbox_settled=outbox_settled,
    )
    return {
        "scraped": True,
        "rows": [asdict(row) for row in rows],
        "disagreements": sum(1 for row in rows if row.status == DISAGREE),
        "database": database,
        "simulator": simulator,
        "own_allocator_moves": own_allocator_moves,
        "outbox_settled": outbox_settled,
        "over_time": over_time(scrapes, before),
    }
