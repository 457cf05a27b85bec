"""The rehearsal's figures, checked against the database, as JSON and as one HTML page.

Every figure is computed from the recording (what the crowd was told) and the database
(what the stack kept); the invariants reuse the checks the tests use
(orders/tests/invariants.py) and add the two only a client can know: acknowledged orders
missing from the database (lost) and customers holding more orders than the launch allows
(duplicated).
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import Count

from customers.models import Message
from inventory.models import Launch
from orders.models import Order
from orders.selectors.fairness import launch_fairness
from orders.tests.invariants import fcfs_violations, oversold, position_gaps

SERVED = (Order.Status.ALLOCATED, Order.Status.FULFILLED)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def jain(values: Iterable[float]) -> float | None:
    """Jain's fairness index: 1 when every value is equal, 1/n when one takes everything."""
    xs = list(values)
    square_sum = sum(x * x for x in xs)
    if not xs or square_sum == 0:
        return None
    return sum(xs) ** 2 / (len(xs) * square_sum)


def per_second(instants: Iterable[float], seconds: int) -> list[int]:
    counts = [0] * seconds
    for t in instants:
        if 0 <= t < seconds:
            counts[int(t)] += 1
    return counts


def capacity_while_refusing(*, admissions: list[int], refusals: list[int]) -> float | None:
    """The stack's measured capacity: admissions per second from its first refusal to its last.

    While it refuses, it is admitting as fast as it can; a run that never refused did not
    find the limit (None).
    """
    busy = [i for i, n in enumerate(refusals) if n]
    if not busy:
        return None
    window = admissions[busy[0] : busy[-1] + 1]
    return round(sum(window) / len(window), 1)


def spike(*, arrivals: list[int], capacity: float | None) -> dict:
    """The busiest second's arrivals, and how many times a given capacity that is."""
    peak = max(arrivals, default=0)
    return {
        "peak_arrivals_per_second": peak,
        "capacity": capacity,
        "times_capacity": round(peak / capacity, 2) if capacity else None,
    }


def invariants(*, launch: Launch, acknowledged: list[str], since) -> dict:
    """All zero after a sound run; `acknowledged` is every reference a 202 named, repeats included."""
    unique = set(acknowledged)
    # Sets compared in Python: an IN list of every reference would pass PostgreSQL's
    # 65,535-parameter limit on a big morning.
    kept = set(Order.objects.filter(launch=launch).values_list("reference", flat=True))
    over_limit = (
        Order.objects.filter(launch=launch)
        .values("customer_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=launch.per_customer_limit)
    )
    kept_since = list(
        Order.objects.filter(launch=launch, created_at__gte=since)
        .exclude(channel=Order.Channel.STORE)
        .values_list("reference", "idempotency_key")
    )
    if launch.fair_start_seconds:
        # A fair start serves its opening draw in draw order, not by sequence: the tests'
        # sequence check would call every drawn order served before an earlier one a
        # violation. The audit's turn is the draw's order, then sequence.
        audit = launch_fairness(launch=launch)
        turn = sum(c.violations for c in audit.checks if c.name in ("out_of_turn", "positions"))
    else:
        turn = len(fcfs_violations(launch_id=launch.pk)) + len(position_gaps(launch_id=launch.pk))
    return {
        "oversold": len(oversold(launch_id=launch.pk)),
        "lost": len(unique - kept),
        "duplicated": sum(row["n"] - launch.per_customer_limit for row in over_limit),
        "fcfs_violations": turn,
        "acknowledged": len(unique),
        "orders_in_database": len(kept_since),
        # Kept but never acknowledged (not an invariant: the answer may have been lost on the
        # way), split by whether the request had an Idempotency-Key (bulk requests have none).
        "kept_not_acknowledged": {
            "with_idempotency_key": sum(1 for ref, key in kept_since if ref not in unique and key),
            "without (bulk)": sum(1 for ref, key in kept_since if ref not in unique and not key),
        },
    }


def summarise(
    *,
    crowd,
    samples,
    mornings,
    launch: Launch,
    since,
    shape,
    behaviour,
    options: dict,
    metrics_agreement: dict | None = None,
    audit: dict | None = None,
) -> dict:
    """The report's JSON: plain numbers and lists, nothing that needs the run to read it.

    `metrics_agreement` (orders.rehearsal.agreement) and `audit` (the fairness audit) are
    computed after the drain; each adds its count of failures to the invariants."""
    seconds = max(int(math.ceil(max(shape.duration, crowd.finished_at))), 1)
    people = crowd.people
    acknowledged = [ref for p in people for ref in p.references]
    status_of = dict(
        Order.objects.filter(launch=launch, created_at__gte=since).values_list("reference", "status")
    )
    answers = [(t, status, code) for p in people for (t, status, code) in p.answers]
    verdicts = [p.time_to_verdict for p in people if p.time_to_verdict is not None]
    outcomes = Counter(p.outcome for p in people)

    # The chance of a unit by arrival second, for people who want one unit (not partners' bulk).
    arrived: dict[int, int] = defaultdict(int)
    served: dict[int, int] = defaultdict(int)
    for p in people:
        if p.kind == "bulk":
            continue
        second = int(p.arrived)
        arrived[second] += 1
        if any(status_of.get(ref) in SERVED for ref in p.references):
            served[second] += 1
    chance = [
        {"second": s, "arrived": arrived[s], "served": served[s], "chance": served[s] / arrived[s]}
        for s in sorted(arrived)
    ]
    opened = int(shape.opens_after)
    last_served = max((s for s in served if served[s]), default=opened)
    contended = [c["chance"] for c in chance if opened <= c["second"] <= last_served]
    fair_start = int(options.get("fair_start") or 0)
    fair_window = [c["chance"] for c in chance if opened <= c["second"] < opened + fair_start]

    sold_out: dict[str, float | None] = {}
    for sample in samples:
        for sku, available in sample.online_available.items():
            sold_out.setdefault(sku, None)
            if available <= 0 and sold_out[sku] is None:
                sold_out[sku] = sample.t
    last = samples[-1] if samples else None
    emails = dict(
        Message.objects.filter(launch=launch, created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    lag = sorted(crowd.client_lag)
    found = invariants(launch=launch, acknowledged=acknowledged, since=since)
    if metrics_agreement is not None:
        # None when /metrics could not be read: not a pass, and said so.
        found["metrics_disagreements"] = metrics_agreement.get("disagreements")
    if audit is not None:
        found["fairness_audit_violations"] = audit["violations"]
    return {
        "launch": launch.slug,
        "options": options,
        "shape": {
            "duration": shape.duration,
            "opens_after": shape.opens_after,
            "peak_rate": shape.peak_rate,
            "crowd": shape.crowd,
            "tau": round(shape.tau, 3),
            "expected_arrivals": round(shape.expected(0, shape.duration), 1),
        },
        "behaviour": vars(behaviour),
        "people": len(people),
        "orders_asked": sum(p.orders for p in people),
        "people_by_kind": dict(Counter(p.kind for p in people)),
        "outcomes": dict(outcomes),
        "requests": len(answers),
        "requests_unanswered": sum(1 for _, s, _ in answers if s < 0),
        "acknowledged_on_replay": sum(p.told_late for p in people),
        "replays_without_answer": sum(p.replay_failed for p in people),
        "answers_by_status": {str(k): v for k, v in sorted(Counter(s for _, s, _ in answers).items())},
        "per_second": {
            "arrivals": per_second((p.arrived for p in people), seconds),
            "admissions": per_second((t for t, s, _ in answers if s in (200, 202)), seconds),
            "refusals": per_second((t for t, s, _ in answers if s in (429, 503)), seconds),
            "rejections": per_second((t for t, s, _ in answers if 400 <= s < 500 and s != 429), seconds),
        },
        "admitted_peak_per_second": max(per_second((t for t, s, _ in answers if s in (200, 202)), seconds)),
        "capacity": capacity_while_refusing(
            admissions=per_second((t for t, s, _ in answers if s in (200, 202)), seconds),
            refusals=per_second((t for t, s, _ in answers if s in (429, 503)), seconds),
        ),
        "spike": spike(
            arrivals=per_second((p.arrived for p in people), seconds), capacity=options.get("capacity")
        ),
        "time_to_verdict": {
            "p50": percentile(verdicts, 50),
            "p99": percentile(verdicts, 99),
            "max": max(verdicts, default=None),
        },
        "client_lag": {
            "p50": percentile(lag, 50),
            "p99": percentile(lag, 99),
            "max": lag[-1] if lag else None,
        },
        "samples": [vars(s) for s in samples],
        "queue_depth_max": max((s.queued for s in samples), default=0),
        "allocator_lag_max": max((s.allocator_lag for s in samples), default=0.0),
        "sold_out_at": sold_out,
        "emails": {"by_status": emails, "sent_at_end": last.emails_sent if last else 0},
        "chance_by_arrival_second": chance,
        "fairness": {
            "jain_while_units_lasted": jain(contended),
            "seconds_while_units_lasted": len(contended),
            "fair_start_seconds": fair_start,
            "jain_fair_start_window": jain(fair_window) if fair_start else None,
        },
        "walk_ins": [vars(m) for m in mornings],
        "customers_left_unused": crowd.customers_left,
        "finished_after": round(crowd.finished_at, 2),
        "invariants": found,
        "figures_match_database": found["acknowledged"] == found["orders_in_database"],
        "metrics_vs_database": metrics_agreement,
        "fairness_audit": audit,
    }


# --- HTML -------------------------------------------------------------------------------

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df")


def svg_chart(
    title: str, series: dict[str, Sequence[tuple[float, float | None]]], *, y_label: str = ""
) -> str:
    """A line chart as inline SVG (presentation attributes only: no script, no style needed).
    A point whose y is None breaks its line (a gap in the readings, not a straight guess)."""
    width, height, left, bottom, top = 760, 220, 56, 28, 24
    points = [(x, y) for line in series.values() for x, y in line if y is not None]
    if not points:
        return f"<figure><figcaption>{html.escape(title)}: no data</figcaption></figure>"
    x_max = max(x for x, _ in points) or 1
    y_max = max(y for _, y in points) or 1

    def at(x: float, y: float) -> str:
        return f"{left + x / x_max * (width - left - 10):.1f},{height - bottom - y / y_max * (height - bottom - top):.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="14" font-size="13" font-family="sans-serif">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="11" text-anchor="end" font-family="sans-serif">'
        f"{y_max:g}</text>",
        f'<text x="{left - 4}" y="{height - bottom}" font-size="11" text-anchor="end" font-family="sans-serif">0</text>',
        f'<text x="{width - 10}" y="{height - 8}" font-size="11" text-anchor="end" font-family="sans-serif">'
        f"{x_max:g} s</text>",
        f'<text x="4" y="{top + 14}" font-size="11" font-family="sans-serif">{html.escape(y_label)}</text>',
    ]
    for n, (name, line) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for x, y in line:
            if y is None:
                segments.append([])
            else:
                segments[-1].append(at(x, y))
        for segment in segments:
            if len(segment) == 1:  # a reading alone between gaps: a dot
                cx, cy = segment[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif segment:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(segment)}"/>'
                )
        parts.append(
            f'<text x="{left + 10 + 150 * n}" y="{height - 8}" font-size="11" fill="{colour}" '
            f'font-family="sans-serif">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}</figure>"


def _row(name: str, value: object) -> str:
    return f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"


INVARIANTS = ("oversold", "lost", "duplicated", "fcfs_violations")
# Checks added after the drain, when the run could make them (see summarise).
LATER_CHECKS = {
    "metrics_disagreements": "/metrics disagreeing with the database (rows)",
    "fairness_audit_violations": "fairness audit violations",
}


def invariants_broken(found: dict) -> bool:
    return any(found[k] for k in INVARIANTS) or any(found.get(k) for k in LATER_CHECKS)


def _cell(value: object) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"<td>{html.escape(str(value))}</td>"


AGREEMENT_RULE = (
    "Counters against the database: equal, exactly (the last scrape comes after the allocator and "
    "the outbox drained). The simulator against the counters: the stack may have counted more than "
    "it heard, never less, and only as much as its requests without an answer asked for. Gauges: "
    "equal to the database's count at the end; allocator lag within a second. Walk-ins are tickets, "
    "not admissions: no counter."
)


def metrics_section(compared: dict | None, samples: list[dict]) -> str:
    """The metrics vs database section: two charts over the run, and the table at the end."""
    if compared is None:
        return ""
    points = compared["over_time"]["points"]
    gaps = compared["over_time"]["gaps"]

    def scraped_line(field: str) -> list[tuple[float, float | None]]:
        # A failed scrape breaks the line where it happened.
        line = [(p["t"], p[field]) for p in points] + [(g["t"], None) for g in gaps]
        return sorted(line, key=lambda point: point[0])

    charts = [
        svg_chart(
            "Orders admitted: /metrics (since the run began) vs the database",
            {
                "/metrics": scraped_line("admitted"),
                "database": [(s["t"], s.get("orders", 0)) for s in samples],
            },
        ),
        svg_chart(
            "Orders queued: /metrics gauge (every launch) vs the database (this run)",
            {
                "/metrics gauge": scraped_line("queued"),
                "database": [(s["t"], s["queued"]) for s in samples],
            },
        ),
    ]
    listed = ", ".join(f"{g['t']} s {g['error']}" for g in gaps[:10]) + (" ..." if len(gaps) > 10 else "")
    scraped = (
        f"<p>/metrics scraped {len(points)} times during the run; {len(gaps)} scrapes failed"
        f"{f' (gaps at {html.escape(listed)})' if gaps else ''}.</p>"
    )
    if not compared.get("scraped"):
        return f"<h2>Metrics vs database</h2><p>{html.escape(compared['note'])}</p>{scraped}{''.join(charts)}"
    rows = "".join(
        "<tr>"
        f"<th>{html.escape(r['figure'])}</th>{_cell(r['metrics'])}{_cell(r['database'])}{_cell(r['simulator'])}"
        f"<td>{'<strong>DISAGREE</strong>' if r['status'] == 'DISAGREE' else html.escape(r['status'])}</td>"
        f"<td>{html.escape(r['note'])}</td></tr>"
        for r in compared["rows"]
    )
    return (
        f"<h2>Metrics vs database: {compared['disagreements']} disagreements</h2>"
        f"<p>{html.escape(AGREEMENT_RULE)}</p>{scraped}{''.join(charts)}"
        "<table><tr><th>figure</th><th>/metrics (change over the run)</th><th>database</th>"
        f"<th>simulator</th><th>agreement</th><th>note</th></tr>{rows}</table>"
        f"<p>{compared['simulator'].get('unanswered_requests', '')} requests without an answer (replays "
        f"included) asked for {compared['simulator']['unanswered_orders']} orders; "
        f"the outbox {'drained' if compared['outbox_settled'] else 'had not drained'} "
        f"{compared.get('outbox_settled_after', '')} s after the allocator.</p>"
    )


def audit_section(audit: dict | None) -> str:
    if audit is None:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(c['title'])}</th>{_cell(c['violations'])}{_cell(c['looked_at'])}</tr>"
        for c in audit["checks"]
    )
    return (
        f"<h2>Fairness audit: {audit['violations']} violations</h2>"
        f'<p>The audit head office\'s page runs, after the drain: <a href="{html.escape(audit["page"])}">'
        f"{html.escape(audit['page'])}</a></p>"
        f"<table><tr><th>check</th><th>violations</th><th>looked at</th></tr>{rows}</table>"
    )


def render_html(summary: dict) -> str:
    ps = summary["per_second"]
    inv = summary["invariants"]
    samples = summary["samples"]
    fair = summary["fairness"]
    charts = [
        svg_chart(
            "Arrivals, admissions and refusals per second",
            {k: list(enumerate(v)) for k, v in ps.items()},
            y_label="per second",
        ),
        svg_chart(
            "Queue depth (orders admitted, not yet allocated)",
            {
                "queued": [(s["t"], s["queued"]) for s in samples],
                "waitlisted": [(s["t"], s["waitlisted"]) for s in samples],
            },
        ),
        svg_chart(
            "Allocator lag (age of the oldest queued order)",
            {"seconds": [(s["t"], s["allocator_lag"]) for s in samples]},
        ),
        svg_chart(
            "Online units left, by SKU",
            {
                sku: [(s["t"], s["online_available"].get(sku, 0)) for s in samples]
                for sku in (samples[0]["online_available"] if samples else {})
            },
        ),
        svg_chart(
            "Chance of a unit by arrival second",
            {"chance": [(c["second"], c["chance"]) for c in summary["chance_by_arrival_second"]]},
        ),
        svg_chart("Emails sent", {"sent": [(s["t"], s["emails_sent"]) for s in samples]}),
    ]
    invariant_rows = "".join(_row(name, inv[name]) for name in INVARIANTS) + "".join(
        _row(title, "not checked: /metrics did not answer" if inv[name] is None else inv[name])
        for name, title in LATER_CHECKS.items()
        if name in inv
    )
    figures = [
        ("launch", summary["launch"]),
        ("options", summary["options"]),
        ("arrival shape", summary["shape"]),
        ("people (by kind)", f"{summary['people']} {summary['people_by_kind']}"),
        ("outcomes", summary["outcomes"]),
        ("requests (by status)", f"{summary['requests']} {summary['answers_by_status']}"),
        (
            "requests without an answer / orders learnt by replaying them",
            f"{summary['requests_unanswered']} / {summary['acknowledged_on_replay']}",
        ),
        ("admitted, peak per second", summary["admitted_peak_per_second"]),
        ("capacity measured here (admitted/s while refusing)", summary["capacity"]),
        ("spike (busiest second's arrivals, x the capacity given)", summary["spike"]),
        (
            "time to a verdict p50 / p99 (s)",
            f"{summary['time_to_verdict']['p50']} / {summary['time_to_verdict']['p99']}",
        ),
        ("client lag p99 / max (s)", f"{summary['client_lag']['p99']} / {summary['client_lag']['max']}"),
        ("queue depth max", summary["queue_depth_max"]),
        ("allocator lag max (s)", summary["allocator_lag_max"]),
        ("sold out at (s)", summary["sold_out_at"]),
        ("emails", summary["emails"]),
        (
            "Jain's index while units lasted",
            f"{fair['jain_while_units_lasted']} over {fair['seconds_while_units_lasted']} s",
        ),
        (
            "fair start (s) / Jain's index in its window",
            f"{fair['fair_start_seconds']} / {fair['jain_fair_start_window']}",
        ),
        ("walk-ins", summary["walk_ins"]),
        (
            "acknowledged orders / orders in the database",
            f"{inv['acknowledged']} / {inv['orders_in_database']}",
        ),
        ("finished after (s)", summary["finished_after"]),
    ]
    verdict = "BROKEN" if invariants_broken(inv) else "hold"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Rehearsal of {html.escape(summary['launch'])}</title>"
        "<style>body{font-family:sans-serif;max-width:820px;margin:1em auto;color:#222}"
        "table{border-collapse:collapse}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #ddd;"
        "vertical-align:top;font-size:13px}figure{margin:1em 0}</style></head><body>"
        f"<h1>Rehearsal of {html.escape(summary['launch'])}</h1>"
        f"<h2>Invariants: all {verdict}</h2><table>{invariant_rows}</table>"
        f"<p>Figures match the database: {summary['figures_match_database']}</p>"
        f"{metrics_section(summary.get('metrics_vs_database'), samples)}"
        f"{audit_section(summary.get('fairness_audit'))}"
        f"{''.join(charts)}<h2>Figures</h2><table>{''.join(_row(n, v) for n, v in figures)}</table>"
        "</body></html>"
    )
