"""Turns a BenchRun (bench/figures.py) into the markdown report and the JSON file."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from bench.figures import (
    REFUSAL_FAST_MS,
    TARGETS,
    BenchRun,
    EmailFigures,
    IntakeFigures,
    LoadPhase,
    NoticeFigures,
    OfficeFigures,
    OfficeRequestFigures,
    RetryPhase,
)

Row = tuple[str, str, str, str]


def fmt(value: float | int | str, digits: int = 0) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def answers_text(answers: dict[str, int]) -> str:
    return ", ".join(f"{status}: {fmt(n)}" for status, n in answers.items()) or "none"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the original table (the same measures as before the split, so runs compare) --------------


def side_by_side_rows(r: BenchRun) -> list[Row]:
    rows: list[Row] = []
    for s in r.side_by_side:
        name, f, o = s.server.label, s.floor, s.single
        rows.append(
            (
                f"[{name}] floor: bare view, one INSERT",
                f"{fmt(f.admitted_per_s)}/s, p50 {f.p50_ms:.1f} ms, p99 {f.p99_ms:.1f} ms",
                "",
                "",
            )
        )
        if o is not None:
            rows.append(
                (
                    f"[{name}] single-order admission (1)",
                    f"{fmt(o.admitted_per_s)} orders/s, p50 {o.p50_ms:.1f} ms, p99 {o.p99_ms:.1f} ms; "
                    f"answers {o.statuses}",
                    "",
                    "",
                )
            )
            ratio = s.ratio or 0.0
            rows.append(
                (
                    f"[{name}] (1) / floor",
                    f"{ratio:.2f}",
                    f">= {TARGETS['single_vs_floor']}",
                    verdict(ratio >= TARGETS["single_vs_floor"]),
                )
            )
    if r.kept_server:
        rows.append(("web server kept for the other phases", r.kept_server, "", ""))
    return rows


def legacy_rows(r: BenchRun) -> list[Row]:
    rows = side_by_side_rows(r)
    b = r.bulk
    if b:
        rows.append(
            (
                "bulk admission (1,000 per request)",
                f"{fmt(b.orders_per_s)} orders/s with {b.clients} clients; request p50 "
                f"{b.request_p50_ms:.0f} ms, p99 {b.request_p99_ms:.0f} ms; other items {b.items_other}, "
                f"other answers {b.http_other}",
                f">= {fmt(TARGETS['bulk_orders_per_s'])}/s",
                verdict(b.orders_per_s >= TARGETS["bulk_orders_per_s"]),
            )
        )
    a = r.allocation
    if a:
        rows.append(
            (
                f"allocation, {fmt(a.queue)}-order queue",
                f"{fmt(a.orders_per_s)} orders/s ({fmt(a.allocated)} allocated, {fmt(a.waitlisted)} "
                f"waitlisted in {a.seconds:.2f} s, {a.batches} batches)",
                f">= {fmt(TARGETS['allocation_orders_per_s'])}/s",
                verdict(a.orders_per_s >= TARGETS["allocation_orders_per_s"]),
            )
        )
    if r.overload:
        rows += overload_rows(r)
    return rows


def overload_rows(r: BenchRun) -> list[Row]:
    ov = r.overload
    assert ov is not None
    p = ov.load
    base = ov.baseline_per_s or 1.0
    refused_share = p.refused / p.answered if p.answered else 0.0
    polite = not any(s.startswith("-") or (s.startswith("5") and s != "503") for s in p.answers)
    return [
        (
            "overload: offered",
            f"{fmt(p.offered_per_s)} req/s for {p.seconds:.0f} s ({p.offered_per_s / base:.1f}x (1)); "
            f"answers {p.answers}",
            "~3x",
            "",
        ),
        (
            "overload: admitted / (1)",
            f"{fmt(p.admitted_per_s)}/s = {ov.admitted_ratio:.2f}",
            f">= {TARGETS['overload_admitted_ratio']}",
            verdict(ov.admitted_ratio >= TARGETS["overload_admitted_ratio"]),
        ),
        (
            "overload: refused 429/503 (share of answers)",
            f"{refused_share:.1%}; with Retry-After {fmt(p.refused_with_retry_after)} of {fmt(p.refused)}; "
            f"refusal p50 {p.refused_p50_ms:.1f} ms, p99 {p.refused_p99_ms:.1f} ms",
            f"every refusal with Retry-After, p99 <= {REFUSAL_FAST_MS:.0f} ms; no errors",
            verdict(
                p.refused_with_retry_after == p.refused and p.refused_p99_ms <= REFUSAL_FAST_MS and polite
            ),
        ),
        (
            "overload: admitted latency",
            f"p50 {p.admitted_p50_ms:.1f} ms, p99 {p.admitted_p99_ms:.1f} ms (client max lag "
            f"{p.lag_max_ms:.0f} ms, client CPU {p.client_cpu_seconds:.1f} s of {p.seconds:.0f} s)",
            "",
            "",
        ),
    ]


def drain_rows(r: BenchRun) -> list[Row]:
    return [
        (f"allocator caught up after {d.after}", f"{d.seconds:.1f} s, queued left {d.queued_left}", "", "")
        for d in r.drains
    ]


# --- the load phases ----------------------------------------------------------------------------


def phase_cells(p: LoadPhase) -> tuple[str, ...]:
    return (
        fmt(p.admitted_per_s),
        fmt(p.refused),
        f"{p.admitted_p50_ms:.1f} / {p.admitted_p99_ms:.1f}",
        f"{p.refused_p50_ms:.1f} / {p.refused_p99_ms:.1f}" if p.refused else "-",
        answers_text(p.errors) if p.errors else "0",
        fmt(p.timeouts),
        f"{p.client_cpu_seconds:.1f} s ({p.client_cpu_share:.0%} of a core, {p.client_processes} proc)",
    )


_PHASE_HEAD = (
    "admitted/s",
    "refused (429/503)",
    "admitted p50 / p99 ms",
    "refused p50 / p99 ms",
    "errors",
    "timeouts",
    "client CPU",
)


def sweep_section(r: BenchRun) -> str:
    if not r.sweep:
        return ""
    rows = [
        (fmt(p.connections), p.server, f"{p.seconds:.0f}", *phase_cells(p), answers_text(p.answers))
        for p in r.sweep
    ]
    short = [p for p in r.sweep if p.out_of_customers]
    note = f"\n\nOut of fresh customers in: {', '.join(p.name for p in short)}." if short else ""
    return (
        "## Connection sweep (closed loop, single-order POST, each request a new customer)\n\n"
        + table(("connections", "server", "s", *_PHASE_HEAD, "answers"), rows)
        + f"\n\nCapacity (admitted/s at 32 connections, the open loop's 1x): {fmt(r.capacity_per_s)}/s."
        + note
    )


def open_loop_section(r: BenchRun) -> str:
    if not r.open_loop:
        return ""
    rows = []
    for step in r.open_loop:
        p = step.load
        achieved = p.offered_per_s / p.asked_per_s if p.asked_per_s else 0.0
        rows.append(
            (
                f"{step.multiple:g}x",
                f"{fmt(p.asked_per_s)} / {fmt(p.offered_per_s)} ({achieved:.0%})",
                f"{p.lag_p99_ms:.0f} / {p.lag_max_ms:.0f}",
                fmt(p.unsent),
                fmt(p.connections),
                *phase_cells(p),
                f"{step.admitted_ratio:.2f}",
                answers_text(p.answers),
            )
        )
    return (
        "## Open loop (fixed arrival rate; latency from each request's scheduled time)\n\n"
        + table(
            (
                "load",
                "asked / achieved req/s",
                "client lag p99 / max ms",
                "unsent",
                "peak connections",
                *_PHASE_HEAD,
                "admitted / capacity",
                "answers",
            ),
            rows,
        )
        + "\n\nAchieved below asked, a large lag or unsent requests mean the client, not the "
        "server, limited the offered load: read that step's figures with it."
    )


def retry_rows(p: RetryPhase) -> list[Row]:
    admit_all = (
        f"{p.seconds_to_admit_all:.1f} s" if p.seconds_to_admit_all is not None else "not all admitted"
    )
    return [
        (
            f"{p.name}: {p.clients} clients, {fmt(p.orders)} orders [{p.server}]",
            f"admitted {fmt(p.admitted)}; time to admit all {admit_all}; refusals seen {fmt(p.refusals)} in "
            f"{fmt(p.attempts)} attempts; other final answers {p.final_other or 0}; unfinished {p.unfinished}",
            "every order admitted once",
            verdict(p.admitted == p.orders and p.distinct_references == p.orders),
        ),
        (
            f"{p.name}: answers",
            f"{answers_text(p.answers)}; errors {p.errors or 0}, timeouts {p.timeouts}",
            "no 5xx but 503",
            verdict(p.server_errors == 0),
        ),
    ]


def resilience_section(r: BenchRun) -> str:
    rows: list[Row] = []
    if r.retrying:
        rows += retry_rows(r.retrying)
    sb = r.slow_bodies
    if sb:
        p, base = sb.load, sb.baseline
        vs = (
            f" (without slow bodies: {fmt(base.admitted_per_s)}/s, p99 {base.admitted_p99_ms:.1f} ms)"
            if base
            else ""
        )
        rows.append(
            (
                f"slow bodies: {sb.slow_connections} connections hold their body, {p.connections} connections "
                f"admit [{p.server}]",
                f"admitted {fmt(p.admitted_per_s)}/s, p50 {p.admitted_p50_ms:.1f} ms, p99 {p.admitted_p99_ms:.1f} ms"
                f"{vs}; answers {answers_text(p.answers)}; errors {p.errors or 0}, timeouts {p.timeouts}; slow "
                f"connections opened {sb.slow_opened}, closed by the server {sb.slow_closed_by_server}",
                "p99 as without",
                "",
            )
        )
    c = r.chaos
    if c:
        rows += retry_rows(c.retry)
        rows.append(
            (
                f"chaos: private Redis (port {c.redis_port}) down {c.outage_seconds:g} s",
                f"customers without an order {c.customers_without_order}, with two or more "
                f"{c.customers_with_two_or_more}; 5xx other than 503: {c.retry.server_errors}",
                "0, 0, 0",
                verdict(
                    c.customers_without_order == 0
                    and c.customers_with_two_or_more == 0
                    and c.retry.server_errors == 0
                ),
            )
        )
    if not rows:
        return ""
    return "## Retries, slow bodies, chaos\n\n" + table(("measure", "figure", "target", "verdict"), rows)


def invariants_section(r: BenchRun) -> str:
    if not r.invariants:
        return ""
    rows = [
        (
            inv.after,
            fmt(inv.oversold_units),
            fmt(inv.acknowledged_missing),
            fmt(inv.duplicate_orders),
            fmt(inv.fcfs_violations),
            f"{inv.ledger_drift_rows} / {inv.reserved_vs_allocated_mismatch}",
            fmt(inv.acknowledged),
            ", ".join(f"{k} {fmt(v)}" for k, v in sorted(inv.orders_by_status.items())),
            verdict(inv.held),
        )
        for inv in r.invariants
    ]
    return "## Invariants after every phase (all must be 0)\n\n" + table(
        (
            "after",
            "oversold",
            "acknowledged missing",
            "duplicates",
            "FCFS violations",
            "ledger drift / reserved mismatch",
            "acknowledged checked",
            "orders",
            "verdict",
        ),
        rows,
    )


def email_rows(e: EmailFigures) -> list[Row]:
    return [
        ("email: campaign enqueue", f"{fmt(e.campaign_enqueue_per_s)} rows/s", "", ""),
        (
            f"email: outbox worker ({e.worker_processes} process) / bare smtplib loop",
            f"{fmt(e.worker_emails_per_s)}/s / {fmt(e.bare_smtplib_emails_per_s)}/s = {e.ratio:.2f} "
            f"({fmt(e.messages)} messages of {fmt(e.message_bytes)} bytes)",
            f">= {e.target_ratio}",
            verdict(e.ratio >= e.target_ratio),
        ),
        (
            "email: sink received / distinct Message-IDs",
            f"{fmt(e.sink_received)} / {fmt(e.sink_unique_message_ids)}; duplicates from the worker "
            f"{e.duplicates_from_worker}",
            "0 duplicates",
            verdict(e.duplicates_from_worker == 0),
        ),
    ]


def intake_rows(f: IntakeFigures) -> list[Row]:
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in f.steps_seconds.items())
    return [
        (
            f"intake: {fmt(f.units)} units to {f.stores} stores, {fmt(f.orders_waiting)} orders waiting",
            f"intake {f.intake_seconds:.1f} s ({steps}); store receipts {f.store_receipts_seconds:.1f} s "
            f"(confirmations {f.store_confirmations_seconds:.1f} s, allocation {f.store_allocation_seconds:.1f} s); "
            f"end to end {f.end_to_end_seconds:.1f} s",
            "seconds",
            "",
        ),
        (
            "intake: served and drift",
            f"{fmt(f.allocated_by_intake)} online by intake, {fmt(f.allocated_at_stores)} at "
            f"{f.stores_receiving} stores; reconcile {f.reconcile_seconds:.1f} s, drift {f.drift}; "
            f"setup {f.setup_seconds:.0f} s",
            "drift 0",
            verdict(f.drift == 0),
        ),
    ]


def notice_rows(f: NoticeFigures) -> list[Row]:
    return [
        (
            f"stock notices: {fmt(f.units_freed)} units freed, {fmt(f.customers_registered)} registered",
            f"{fmt(f.notified)} told and {fmt(f.held)} held in {f.notices_seconds:.1f} s",
            "seconds",
            verdict(f.notified == int(f.units_freed * 1.5) and f.held == f.units_freed and not f.problems),
        ),
        (
            "stock notices: claim path vs admission path, per order",
            f"claim {f.claim_ms_per_order:.2f} ms ({fmt(f.claims)} orders); admission {f.admission_ms_per_order:.2f} ms, "
            f"with the allocator {f.admission_allocated_ms_per_order:.2f} ms ({fmt(f.admitted)} orders)",
            "",
            verdict(not f.problems),
        ),
    ]


def others_section(r: BenchRun) -> str:
    rows: list[Row] = []
    if r.email:
        rows += email_rows(r.email)
    if r.intake:
        rows += intake_rows(r.intake)
    if r.notices:
        rows += notice_rows(r.notices)
    if not rows:
        return ""
    return "## Email, intake and stock notices\n\n" + table(("measure", "figure", "target", "verdict"), rows)


def office_target(q: OfficeRequestFigures) -> str:
    size = f"; <= {q.target_bytes // 1024} KB" if q.target_bytes else ""
    note = f" ({q.note})" if q.note else ""
    return f"p99 <= {q.target_ms:g} ms{size}; all 200{note}"


def office_section(r: BenchRun) -> str:
    """Head office's pages (issue 11) over HTTP, each against its target."""
    o: OfficeFigures | None = r.office
    if o is None:
        return ""
    rows: list[Row] = []
    for q in o.requests:
        how = (
            f"{q.per_s:g} polls/s on schedule; {fmt(q.from_memory)} answered from memory (Age <= {q.age_max_s} s), "
            f"p99 {q.memory_p99_ms:.1f} ms; {fmt(q.requests - q.from_memory)} by Django (its process held no pass or "
            f"answer for it yet), p50 {q.django_p50_ms:.1f} ms, max {q.django_max_ms:.1f} ms"
            if q.kind == "poll"
            else f"{q.per_s:g} loads/s on schedule; most {q.most_per_s:.0f}/s on {o.connections} connections"
        )
        rows.append(
            (
                f"{q.name} `{q.path}`",
                f"p50 {q.p50_ms:.1f} ms, p99 {q.p99_ms:.1f} ms, max {q.max_ms:.1f} ms; {fmt(q.bytes_max)} bytes on "
                f"the wire ({fmt(q.page_bytes_max)} uncompressed); {fmt(q.ok)} of {fmt(q.requests)} answered 200 "
                f"({answers_text(q.statuses)}); {how}",
                office_target(q),
                verdict(q.met),
            )
        )
    for f in o.in_process:
        rows.append(
            (
                f"{f.name}, in the bench's process",
                f"p50 {f.p50_ms:.1f} ms, p99 {f.p99_ms:.1f} ms, max {f.max_ms:.1f} ms ({f.calls} calls)",
                "(measured)",
                "",
            )
        )
    if o.fairness_plan:
        rows.append(
            ("fairness audit's first statement (per-pool turn): plan", f"`{o.fairness_plan}`", "", "")
        )
    statuses = ", ".join(f"{k} {fmt(v)}" for k, v in sorted(o.orders_by_status.items()))
    return (
        "## Head office's pages (issue 11), over HTTP\n\n"
        f"Launch `{o.launch}`: {fmt(o.customers)} customers, {fmt(o.registrations)} registrations, "
        f"{fmt(o.orders)} orders ({statuses}), seeded in {o.seed_seconds:.0f} s. Polled fragments: "
        f"{o.browsers} head-office browsers, an open loop for {o.poll_seconds:g} s (latency from each poll's "
        f"schedule); meanwhile each page in turn for {o.page_seconds:g} s, an open loop too; then each page "
        f"back to back on {o.connections} connections (the most loads a second).\n\n"
        + table(("measure", "figure", "target", "verdict"), rows)
    )


def head(r: BenchRun) -> str:
    servers = "".join(f"\n- {s.server.describe()}" for s in r.side_by_side)
    return (
        f"# Launchday bench {r.started}{' (quick smoke run)' if r.quick else ''}\n\n"
        f"Machine: {r.cores} cores, {r.platform}, Python {r.python}. Main web server: {r.workers} workers, "
        f"loopback; PostgreSQL and Redis on the same machine, and so is the load generator. Phases of "
        f"{r.duration:g} s (original phases) and {r.step_duration:g} s (sweep, open loop, slow bodies). "
        f"Total run {r.total_seconds:.0f} s. Load average (1 min) at start {r.load_start:.1f}, at end "
        f"{r.load_end:.1f}: other work on the machine competes with the bench. somaxconn {r.somaxconn} "
        f"(caps any listen backlog), client open-file limit {fmt(r.nofile_limit)}.\n\n"
        f"Web servers that ran:{servers}\n"
    )


def crush_section(r: BenchRun) -> str:
    """The admission measures of "The crush, for real", each against its target, computed
    from the phases above: the floor is the best floor of the run (a bare one-INSERT view
    under gunicorn's sync workers, the fastest server for it)."""
    floors = [s.floor.admitted_per_s for s in r.side_by_side if s.floor is not None]
    floor = max(floors, default=0.0)
    by_connections = {p.connections: p for p in r.sweep}
    rows: list[Row] = []
    at32 = by_connections.get(32)
    if at32 is not None and floor:
        refused = at32.refused / at32.answered if at32.answered else 0.0
        ratio = at32.admitted_per_s / floor
        rows.append(
            (
                f"[{at32.server}] admitted/s at 32 connections / floor",
                f"{fmt(at32.admitted_per_s)} / {fmt(floor)} = {ratio:.2f}; refused {refused:.1%}",
                ">= 1.5, <= 1% refused",
                verdict(ratio >= 1.5 and refused <= 0.01),
            )
        )
        for n in (256, 1024):
            p = by_connections.get(n)
            if p is None or not at32.admitted_per_s:
                continue
            ratio = p.admitted_per_s / at32.admitted_per_s
            rows.append(
                (
                    f"[{p.server}] {n:,} connections / 32",
                    f"{fmt(p.admitted_per_s)} / {fmt(at32.admitted_per_s)} = {ratio:.2f}; "
                    f"errors {p.error_count}, 5xx other than 503 {p.server_errors}, timeouts {p.timeouts}",
                    ">= 0.9, 0 errors or timeouts",
                    verdict(ratio >= 0.9 and not p.error_count and not p.server_errors and not p.timeouts),
                )
            )
    for step in r.open_loop:
        load = step.load
        achieved = load.offered_per_s / load.asked_per_s if load.asked_per_s else 0.0
        if step.multiple == 3:
            ok = step.admitted_ratio >= 0.9 and load.refused_p99_ms <= 100 and load.admitted_p99_ms <= 1000
            target = ">= 0.9; refusals p99 <= 100 ms; admitted p99 <= 1 s"
        elif step.multiple == 10:
            ok = (
                step.admitted_ratio >= 0.8
                and not load.error_count
                and not load.server_errors
                and not load.timeouts
            )
            target = ">= 0.8, no errors"
        else:
            continue
        rows.append(
            (
                f"open loop {step.multiple:g}x capacity: admitted / capacity",
                f"{step.admitted_ratio:.2f} ({fmt(load.admitted_per_s)}/s of {fmt(step.capacity_per_s)}/s); "
                f"refusals p99 {load.refused_p99_ms:.0f} ms, admitted p99 {load.admitted_p99_ms:.0f} ms; "
                f"the client sent {achieved:.0%} of the rate asked; errors {load.error_count}, "
                f"5xx other than 503 {load.server_errors}, timeouts {load.timeouts}",
                target,
                verdict(ok),
            )
        )
    if r.retrying is not None:
        p = r.retrying
        rows.append(
            (
                f"{p.orders:,} orders from {p.clients} clients at once, honouring Retry-After",
                f"{fmt(p.refusals)} refusals; admitted {fmt(p.admitted)}, distinct references "
                f"{fmt(p.distinct_references)}",
                "<= 75 refusals; all admitted",
                verdict(p.refusals <= 75 and p.admitted == p.orders == p.distinct_references),
            )
        )
    if r.slow_bodies is not None:
        sb = r.slow_bodies
        rows.append(
            (
                f"{sb.slow_connections} slow-body connections held open: p99 of other admissions",
                f"{sb.load.admitted_p99_ms:.0f} ms ({fmt(sb.load.admitted_per_s)}/s admitted)",
                "<= 200 ms",
                verdict(sb.load.admitted_p99_ms <= 200 and sb.load.admitted > 0),
            )
        )
    if r.chaos is not None:
        c = r.chaos
        server_errors = c.retry.server_errors
        rows.append(
            (
                f"Redis stopped {c.outage_seconds:g} s during {c.retry.orders:,} orders: 5xx other than 503",
                f"{server_errors}; customers without an order {c.customers_without_order}, with two or more "
                f"{c.customers_with_two_or_more}",
                "0",
                verdict(
                    server_errors == 0 and not c.customers_without_order and not c.customers_with_two_or_more
                ),
            )
        )
    if r.database_crash is not None:
        d = r.database_crash
        server_errors = d.retry.server_errors
        rows.append(
            (
                f"PostgreSQL crashed (immediate stop) {d.outage_seconds:g} s during {d.retry.orders:,} orders: "
                "5xx other than 503; orders per customer; emails repeated",
                f"{server_errors}; acknowledged {fmt(d.acknowledged)}, customers without an order "
                f"{d.customers_without_order}, with two or more {d.customers_with_two_or_more}; emails "
                f"{fmt(d.emails_received)} received, {d.emails_repeated} repeated; left unsent "
                f"{d.messages_left_unsent}, orders left queued {d.orders_left_queued}",
                f"0; exactly one; <= {d.sending_processes} repeated (one per sending process)",
                verdict(
                    server_errors == 0
                    and not d.customers_without_order
                    and not d.customers_with_two_or_more
                    and d.emails_repeated <= d.sending_processes
                    and d.messages_left_unsent == 0
                ),
            )
        )
    if r.store_panel is not None:
        sp = r.store_panel
        for poll in (sp.panel, sp.ready_list):
            rows.append(
                (
                    f"store page {poll.name}, {sp.browsers} staff browsers ({poll.per_s:g}/s) at a store with "
                    f"{fmt(sp.waiting)} collect orders waiting and {fmt(sp.ready)} ready",
                    f"p50 {poll.p50_ms:.1f} ms, p99 {poll.p99_ms:.1f} ms; {fmt(poll.bytes_max)} bytes on the wire "
                    f"({fmt(poll.page_bytes_max)} uncompressed); "
                    f"{fmt(poll.ok)} of {fmt(poll.polls)} answered 200",
                    "p99 <= 20 ms; <= 10 KB",
                    verdict(poll.p99_ms <= 20 and poll.bytes_max <= 10_240 and poll.ok == poll.polls),
                )
            )
        rows.append(
            (
                "store panel polls, 8 connections back to back: most per second, web CPU per poll",
                f"{fmt(sp.most_polls_per_s)}/s; {sp.web_cpu_ms_per_poll:.1f} ms CPU per poll, so "
                f"{sp.browsers} browsers take {sp.cores_for_browsers:.2f} cores",
                "(measured)",
                "",
            )
        )
    if not rows:
        return ""
    return "## The crush: admission against its targets\n\n" + table(
        ("measure", "figure", "target", "verdict"), rows
    )


def report(r: BenchRun) -> str:
    main = "## Floor, admission, bulk, allocator, 3x overload\n\n" + table(
        ("measure", "figure", "target", "verdict"), legacy_rows(r) + drain_rows(r)
    )
    sections = [
        head(r),
        crush_section(r),
        office_section(r),
        main,
        sweep_section(r),
        open_loop_section(r),
        resilience_section(r),
        invariants_section(r),
        others_section(r),
    ]
    if r.failures:
        sections.append("## Phases that failed\n" + "".join(f"\n- {f}" for f in r.failures))
    if r.notes:
        sections.append("Notes:\n" + "".join(f"\n- {n}" for n in r.notes))
    return "\n\n".join(s for s in sections if s) + "\n"


def write_results(r: BenchRun, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    base = directory / f"{stamp}-{r.cores}cores{'-quick' if r.quick else ''}"
    base.with_suffix(".md").write_text(report(r))
    clean = json.loads(json.dumps(r.as_json(), default=str))
    base.with_suffix(".json").write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
    return base.with_suffix(".md")
