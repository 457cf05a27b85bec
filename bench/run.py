"""`make bench`: Launchday's load benchmark on the production-like stack, in one run.

On loopback it creates a fresh PostgreSQL database (launchday_bench), seeds it, starts
the web server, one Celery worker and beat (Redis db 5) with DJANGO_SETTINGS_MODULE=
bench.settings, and runs these phases, each bounded in time, checking the invariants
(oversold, acknowledged-but-missing, duplicates, FCFS) after every one:

The original phases, unchanged so runs before and after compare:
1. side by side: the floor (a bare one-INSERT view, bench/floor.py) and single-order
   admission (POST /api/v1/orders/, each request a new customer) with wrk, under the
   main server and every --compare variant, reported as ratios;
2. overload: the original open-loop client offering 3x (1)'s rate;
3. bulk admission (1,000 orders per request, a few clients);
4. the allocator on a 100,000-order queue, in process (the stack stopped).

Then, on a fresh start of the main server:
5. connection sweep: closed loop at 8, 32, 256 and 1,024 connections;
6. open loop: a fixed arrival rate at 1x, 3x and 10x the 32-connection capacity, from
   several client processes, with asked vs achieved rate and the client's lag and CPU;
7. retrying clients: 48 clients, 1,500 orders sent at once, each retried with its
   Idempotency-Key and honouring Retry-After until it has a final answer;
8. slow bodies: 100 connections hold their request body back while 32 connections admit;
9. store panel (bench/store_panel.py): one partner store brought to 24,000 collect orders
   waiting, its live panel and ready list polled by sixty staff browsers (open loop);
9b. office (bench/office.py): a launch of its own seeded at launch scale (320,000 orders),
   head office's polled fragments and page loads over HTTP, an open loop (and each page's
   most loads/s back to back);
10. chaos (only with --chaos): the retrying clients against a stack on a private
   redis-server stopped for 5 s, then a private PostgreSQL crashed for 5 s
   (bench/chaos_pg.py);
11. bench/email_bench.py, bench/intake_bench.py, bench/webhook_bench.py and
   bench/notice_bench.py (stock notices for 100,000 freed units; claim path vs admission).
   bench/orders_search.py (the orders page over 1,000,000 orders; a line in Notes).

It writes bench/results/<date>-<cores>cores.md and .json (a --quick run writes to
var/bench/results/ instead). Every process it started is stopped at the end, also on
Ctrl-C, SIGTERM or an error; --max-seconds bounds the whole run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load, stack  # noqa: E402 - after sys.path, so `python bench/run.py` works
from bench.figures import (  # noqa: E402
    BenchRun,
    ChaosPhase,
    LoadPhase,
    OpenLoopStep,
    OverloadLegacy,
    ServerSpec,
    SideBySide,
    SlowBodyPhase,
)
from bench.invariants import invariants, orders_per_customer  # noqa: E402
from bench.report import report, write_results  # noqa: E402
from bench.stack import CORES, FLOOR_PATH, LOGS, ORDERS_PATH, Seeded, Stack, log  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# One INSERT per request under gunicorn's sync workers: admission before group commit.
PREVIOUS_PATH = "previous=gunicorn:ADMISSION_GROUP_COMMIT=0"
QUICK_RESULTS = ROOT / "var" / "bench" / "results"
PHASES = ("side", "overload", "bulk", "allocation", "sweep", "open", "retry", "slow", "panel", "office")
# D0000001..D0100000 are the allocator's; the original phases draw from the next range.
ALLOCATOR_CUSTOMERS = 100_000


class BenchAborted(Exception):
    """SIGTERM or the run's time limit: stop the phases, stop the stack, keep the figures."""


@dataclass
class Run:
    """The state one run carries between phases."""

    args: argparse.Namespace
    figures: BenchRun
    seeded: Seeded
    legacy: load.Customers  # fresh customers of the original phases (their range as before)
    fresh: load.Customers  # fresh customers of the new phases
    acknowledged: list[str] = field(default_factory=list)
    stack: Stack | None = None

    def checkpoint(self, after: str, *, drain_timeout: float = 60.0) -> None:
        """Let the allocator catch up, then check the invariants."""
        self.figures.drains.append(stack.wait_allocator(self.seeded.launch_id, drain_timeout, after=after))
        inv = invariants(self.acknowledged, after=after)
        self.figures.invariants.append(inv)
        log(f"invariants after {after}: {'held' if inv.held else 'BROKEN'}")

    def phase(self, name: str, body: Callable[[], None]) -> None:
        """Run one phase; a phase that raises is reported and the run goes on."""
        if name in PHASES and name not in self.args.phases:
            return
        started = time.monotonic()
        try:
            body()
        except (KeyboardInterrupt, BenchAborted):
            raise
        except Exception as exc:
            traceback.print_exc()
            self.figures.failures.append(f"{name}: {type(exc).__name__}: {exc}")
        log(f"phase {name} took {time.monotonic() - started:.0f}s")

    def take_fresh(self, count: int) -> int:
        if self.fresh.left < count:
            raise RuntimeError(
                f"{count:,} fresh customers needed, {self.fresh.left:,} left (raise --customers)"
            )
        return self.fresh.take(count)

    def start_stack(self, spec: ServerSpec, redis_url: str | None = None) -> Stack:
        started = Stack(spec=spec, port=stack.free_port(), redis_url=redis_url)
        started.start()
        log(f"{spec.label} up on {started.port} with {spec.workers} workers; Celery worker and beat started")
        return started


# --- the original phases ---------------------------------------------------------------------


def side_by_side(run: Run, spec: ServerSpec) -> Stack:
    """The floor and single-order admission with wrk, as the bench always measured them."""
    args, seeded = run.args, run.seeded
    running = run.start_stack(spec)
    wrk_kw = {"port": running.port, "connections": args.connections, "threads": 2}
    # Warm every worker (imports, pools), then the floor.
    load.wrk_run(path=FLOOR_PATH, duration=2, first=1, per_thread=1000, **wrk_kw)
    floor = load.wrk_run(path=FLOOR_PATH, duration=args.duration, first=1, per_thread=10**6, **wrk_kw)
    log(f"[{spec.label}] floor: {floor.admitted_per_s:.0f}/s {floor.statuses}")
    result = SideBySide(server=spec, floor=floor)
    run.figures.side_by_side.append(result)
    # Enough fresh customers per wrk thread for this run even at the floor's rate.
    per_thread = int(floor.admitted_per_s * (args.duration + 3) * 1.3 / 2) + 1000
    per_thread = max(1000, min(per_thread, (run.legacy.left - 2000) // 2))
    warm_first = run.legacy.take(2000)
    load.wrk_run(path=ORDERS_PATH, duration=2, first=warm_first, per_thread=1000, key=seeded.key,
                 stores=seeded.partner_stores, **wrk_kw)  # fmt: skip
    first = run.legacy.take(per_thread * 2)
    refs_dir = LOGS / f"refs-{spec.label}"
    shutil.rmtree(refs_dir, ignore_errors=True)
    refs_dir.mkdir(parents=True)
    result.single = load.wrk_run(
        path=ORDERS_PATH, duration=args.duration, first=first, per_thread=per_thread, key=seeded.key,
        stores=seeded.partner_stores, refs_dir=refs_dir, **wrk_kw,
    )  # fmt: skip
    run.acknowledged.extend(load.wrk_refs(refs_dir))
    log(f"[{spec.label}] single: {result.single.admitted_per_s:.0f}/s {result.single.statuses}")
    run.checkpoint(f"single ({spec.label})")
    return running


def overload(run: Run) -> None:
    main = run.figures.side_by_side[-1]
    assert run.stack is not None and main.single is not None
    baseline = main.single.admitted_per_s
    duration = run.args.duration
    rate = max(30.0, baseline * 3)
    offered = int(rate * duration)
    if run.legacy.left < offered:
        run.figures.notes.append(
            f"overload offered only {run.legacy.left:,} of {offered:,} requests: out of customers"
        )
        rate = run.legacy.left / duration
    log(f"overload: offering {rate:.0f} req/s for {duration:g}s")
    first = run.legacy.take(int(rate * duration))
    phase, refs = load.overload_run(
        port=run.stack.port, key=run.seeded.key, first=first, rate=rate, duration=duration,
        stores=run.seeded.partner_stores, server=run.stack.spec.label,
    )  # fmt: skip
    run.acknowledged.extend(refs)
    run.figures.overload = OverloadLegacy(load=phase, baseline_per_s=baseline)
    log(f"overload: admitted {phase.admitted_per_s:.0f}/s, answers {phase.answers}")
    run.checkpoint("overload")


def bulk(run: Run) -> None:
    assert run.stack is not None
    log(f"bulk: {run.args.bulk_clients} clients, {run.legacy.left:,} customers left")
    phase, refs = load.bulk_run(
        port=run.stack.port, key=run.seeded.key, customers=run.legacy, stores=run.seeded.partner_stores,
        clients=run.args.bulk_clients, duration=run.args.duration,
    )  # fmt: skip
    run.acknowledged.extend(refs)
    run.figures.bulk = phase
    log(f"bulk: {phase.orders_per_s:.0f} orders/s, other items {phase.items_other}")
    run.checkpoint("bulk", drain_timeout=90)


def allocation(run: Run) -> None:
    from bench.allocation import allocation_bench

    log("allocator on a 100,000-order queue, in process")
    run.figures.allocation = allocation_bench(orders=ALLOCATOR_CUSTOMERS)
    log(f"allocation: {run.figures.allocation.orders_per_s:.0f} orders/s")
    run.figures.invariants.append(invariants(run.acknowledged, after="allocation"))


# --- the new phases ----------------------------------------------------------------------------


def warm(run: Run, running: Stack) -> None:
    """Bring every web worker to speed before a measurement, as the original phases do.

    The server answers its first request while its other workers still load the launch's
    eligible customers: without this the first step would measure a warming server.
    """
    wrk_kw = {"port": running.port, "connections": run.args.connections, "threads": 2}
    load.wrk_run(path=FLOOR_PATH, duration=2, first=1, per_thread=1000, **wrk_kw)
    load.wrk_run(path=ORDERS_PATH, duration=2, first=run.take_fresh(2000), per_thread=1000, key=run.seeded.key,
                 stores=run.seeded.partner_stores, **wrk_kw)  # fmt: skip


def sweep(run: Run) -> None:
    assert run.stack is not None
    for connections in run.args.sweep:
        phase = closed_step(run, connections=connections, name=f"sweep {connections} connections")
        run.figures.sweep.append(phase)
    by_connections = {p.connections: p.admitted_per_s for p in run.figures.sweep}
    run.figures.capacity_per_s = by_connections.get(32) or max(by_connections.values(), default=0.0)
    if 32 not in by_connections:
        run.figures.notes.append("no 32-connection step: capacity is the sweep's best admitted/s")


def closed_step(run: Run, *, connections: int, name: str) -> LoadPhase:
    assert run.stack is not None
    phase, refs, next_customer = load.closed_loop(
        port=run.stack.port, key=run.seeded.key, stores=run.seeded.partner_stores, connections=connections,
        duration=run.args.step_duration, processes=run.args.client_procs, first_customer=run.fresh.next,
        last_customer=run.fresh.last, server=run.stack.spec.label, name=name,
    )  # fmt: skip
    run.fresh.next = next_customer
    run.acknowledged.extend(refs)
    log(f"{name}: admitted {phase.admitted_per_s:.0f}/s, answers {phase.answers}")
    run.checkpoint(name)
    return phase


def open_loop(run: Run) -> None:
    assert run.stack is not None
    capacity = run.figures.capacity_per_s
    if not capacity:
        raise RuntimeError("no capacity measured (the sweep did not run or admitted nothing)")
    for multiple in run.args.open_loop:
        rate = capacity * multiple
        name = f"open loop {multiple:g}x"
        log(f"{name}: offering {rate:.0f} req/s for {run.args.step_duration:g}s")
        phase, refs, next_customer = load.open_loop(
            port=run.stack.port, key=run.seeded.key, stores=run.seeded.partner_stores, rate=rate,
            duration=run.args.step_duration, processes=run.args.client_procs,
            max_connections=run.args.max_connections, first_customer=run.fresh.next,
            last_customer=run.fresh.last, server=run.stack.spec.label, name=name,
        )  # fmt: skip
        run.fresh.next = next_customer
        run.acknowledged.extend(refs)
        run.figures.open_loop.append(OpenLoopStep(multiple=multiple, capacity_per_s=capacity, load=phase))
        log(
            f"{name}: asked {rate:.0f}/s, sent {phase.offered_per_s:.0f}/s, admitted {phase.admitted_per_s:.0f}/s, "
            f"lag p99 {phase.lag_p99_ms:.0f} ms, answers {phase.answers}"
        )
        run.checkpoint(name)


def retrying(run: Run) -> None:
    assert run.stack is not None
    orders = run.args.retry_orders
    phase, refs = load.retrying_run(
        port=run.stack.port, key=run.seeded.key, stores=run.seeded.partner_stores, clients=run.args.retry_clients,
        orders=orders, first_customer=run.take_fresh(orders), deadline=run.args.retry_deadline,
        server=run.stack.spec.label, name="retrying clients",
    )  # fmt: skip
    run.acknowledged.extend(refs)
    run.figures.retrying = phase
    log(
        f"retrying: admitted {phase.admitted} of {orders}, refusals {phase.refusals}, answers {phase.answers}"
    )
    run.checkpoint("retrying clients")


def slow_bodies(run: Run) -> None:
    assert run.stack is not None
    stop = threading.Event()
    seen = load.SlowBodies()
    holder = threading.Thread(
        target=load.slow_bodies_hold,
        kwargs={"port": run.stack.port, "key": run.seeded.key, "connections": run.args.slow_bodies,
                "stop": stop, "seen": seen},
        daemon=True,
    )  # fmt: skip
    holder.start()
    try:
        time.sleep(1.0)  # let the slow connections reach the server before the load starts
        phase = closed_step(run, connections=32, name=f"admission beside {run.args.slow_bodies} slow bodies")
    finally:
        stop.set()
        holder.join(timeout=10)
    baseline = next((p for p in run.figures.sweep if p.connections == 32), None)
    run.figures.slow_bodies = SlowBodyPhase(
        slow_connections=run.args.slow_bodies,
        slow_opened=seen.opened,
        slow_closed_by_server=seen.closed_by_server,
        baseline=baseline,
        load=phase,
    )


def store_panel(run: Run) -> None:
    """A store's live panel polled by sixty staff browsers, with 24,000 orders waiting there."""
    from bench import store_panel as panel

    assert run.stack is not None
    customers = min(panel.WAITING_TARGET, run.fresh.left)
    first = run.take_fresh(customers)
    run.figures.store_panel = panel.run(
        running=run.stack, launch_id=run.seeded.launch_id, store_code=run.seeded.partner_stores[0],
        first_customer=first, customers=customers, seconds=run.args.step_duration,
    )  # fmt: skip
    p = run.figures.store_panel.panel
    log(f"store panel: p99 {p.p99_ms:.1f} ms, {p.bytes_max:,} bytes per poll")
    run.checkpoint("store panel")


def office(run: Run) -> None:
    """Head office's pages over HTTP, on a launch of their own at launch scale."""
    from bench import office as pages

    assert run.stack is not None
    # 40 s a page at 4 loads/s: 160 loads, so a page's nearest-rank p99 is its second
    # slowest load (with 80 it was the slowest, and one stall of the machine decided it).
    run.figures.office = pages.run(
        running=run.stack, page_seconds=2 * run.args.step_duration + 10.0,
        quick=run.args.quick,
    )  # fmt: skip
    missed = [r.name for r in run.figures.office.requests if not r.met]
    log(f"office: {len(run.figures.office.requests) - len(missed)} met, missed: {missed or 'none'}")
    # The office launch's orders are checked with everyone else's: seeded as the
    # allocator would have left them, they hold every invariant.
    run.checkpoint("office")


def chaos(run: Run, spec: ServerSpec) -> None:
    """Retrying clients against a stack whose (private) Redis is stopped for a while."""
    if not stack.port_free(run.args.chaos_redis_port):
        raise RuntimeError(
            f"port {run.args.chaos_redis_port} is taken: the chaos phase needs its own Redis there"
        )
    redis = stack.PrivateRedis(run.args.chaos_redis_port)
    redis.start()
    running = run.start_stack(spec, redis_url=redis.url)
    warm(run, running)
    outage = run.args.chaos_outage

    def redis_outage() -> None:
        # At once: a thousand orders take about a second, and the outage must overlap them.
        time.sleep(0.2)
        log(f"chaos: stopping the private Redis for {outage:g}s")
        redis.stop()
        time.sleep(outage)
        redis.start()
        log("chaos: private Redis back")

    try:
        orders = run.args.retry_orders
        first = run.take_fresh(orders)
        phase, refs = load.retrying_run(
            port=running.port, key=run.seeded.key, stores=run.seeded.partner_stores,
            clients=run.args.retry_clients, orders=orders, first_customer=first,
            deadline=run.args.retry_deadline, server=spec.label, name="chaos retrying clients",
            during=redis_outage,
        )  # fmt: skip
        run.acknowledged.extend(refs)
        run.checkpoint("chaos")
    finally:
        running.stop()
        redis.close()
    without, twice = orders_per_customer(launch_id=run.seeded.launch_id, first=first, count=orders)
    run.figures.chaos = ChaosPhase(
        outage_seconds=outage,
        redis_port=run.args.chaos_redis_port,
        retry=phase,
        customers_without_order=without,
        customers_with_two_or_more=twice,
    )


def database_crash(run: Run) -> None:
    """PostgreSQL stopped (immediate) under retrying clients: bench/chaos_pg.py, own cluster."""
    from bench import chaos_pg

    if not stack.port_free(chaos_pg.PORT):
        raise RuntimeError(f"port {chaos_pg.PORT} is taken: the crash phase needs its own PostgreSQL there")
    run.figures.database_crash = chaos_pg.run(
        orders=run.args.retry_orders, outage=run.args.chaos_outage, clients=run.args.retry_clients
    )


def other_benches(run: Run) -> None:
    for name in ("email_bench", "intake_bench", "webhook_bench", "notice_bench", "orders_search"):
        log(f"running bench/{name}.py")
        started = time.monotonic()
        try:
            if name == "email_bench":
                from bench import email_bench

                run.figures.email = email_bench.run()
            elif name == "intake_bench":
                from bench import intake_bench

                run.figures.intake = intake_bench.run()
            elif name == "notice_bench":
                from bench import notice_bench

                run.figures.notices = notice_bench.run(**({"claims": 300} if run.args.quick else {}))
            elif name == "orders_search":
                from bench import orders_search

                figures = orders_search.run(**({"orders": 100_000, "rounds": 10} if run.args.quick else {}))
                run.figures.notes.append(orders_search.summary(figures))
            else:
                from bench import webhook_bench

                run.figures.webhooks = webhook_bench.run(
                    **({"n": 2_000, "probes": 100} if run.args.quick else {})
                )
        except (KeyboardInterrupt, BenchAborted):
            raise
        except Exception as exc:  # another bench failing must not lose the load figures
            traceback.print_exc()
            run.figures.failures.append(f"{name}: {type(exc).__name__}: {exc}")
        log(f"bench/{name}.py took {time.monotonic() - started:.0f}s")


# --- options and main ----------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _env_pairs(items: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        pairs.append((name, value))
    return tuple(pairs)


def workers_for(kind: str, *, args: argparse.Namespace) -> int:
    """--workers when given; otherwise what serves each kind best here. An ASGI process
    keeps its core busy on its own (its waiting requests are coroutines), and fewer
    processes make bigger group-commit batches: one per core measured 2,102 orders/s at
    32 connections against 1,513 with two per core. A sync worker idles while it waits
    on the database, so gunicorn gets two per core."""
    if args.workers:
        return args.workers
    return CORES if kind in ("uvicorn", "granian") else CORES * 2


def parse_compare(text: str, *, args: argparse.Namespace) -> ServerSpec:
    """`label=kind:KEY=VALUE,KEY=VALUE`, `kind:KEY=VALUE` or just `kind`."""
    label, _, rest = text.partition("=") if "=" in text.split(":", 1)[0] else ("", "", text)
    kind, _, settings = rest.partition(":")
    pairs = _env_pairs([s for s in settings.split(",") if s])
    # WORKERS=N sets the variant's process count; every other pair is a server-side setting.
    workers = next((int(v) for k, v in pairs if k == "WORKERS"), workers_for(kind, args=args))
    env = tuple((k, v) for k, v in pairs if k != "WORKERS")
    label = label or (kind + ("+" + ",".join(f"{k}={v}" for k, v in pairs) if pairs else ""))
    return stack.server_spec(
        kind, workers=workers, backlog=args.backlog, label=label, env=env, command=args.server_cmd
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: phases of a few seconds, fewer customers"
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds per original phase (default 20)")
    p.add_argument(
        "--step-duration", type=float, default=15.0, help="seconds per sweep/open-loop step (default 15)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="web workers (default: one per core for uvicorn and granian, as make serve runs; two per "
        "core for gunicorn's workers)",
    )
    p.add_argument("--connections", type=int, default=0, help="wrk connections (default 2 per worker)")
    p.add_argument("--backlog", type=int, default=2048, help="the web server's listen backlog (default 2048)")
    p.add_argument(
        "--server", default="uvicorn", help=f"main web server: {', '.join(stack.SERVER_KINDS)} (default "
        "uvicorn, what make serve runs; 'both' is the old spelling of --server gunicorn --compare granian)",
    )  # fmt: skip
    p.add_argument(
        "--server-cmd",
        default="",
        help="the command of --server custom, with {host} {port} {workers} {backlog}",
    )
    p.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="a server-side setting for the main server (repeatable), e.g. ADMISSION_MAX_QUEUE_MS=100",
    )  # fmt: skip
    p.add_argument(
        "--compare", action="append", default=[], metavar="SPEC",
        help="another variant for the side-by-side phase (repeatable): KIND, KIND:KEY=VALUE,... or "
        "LABEL=KIND:KEY=VALUE,... (WORKERS=N sets its processes); default: the previous path, "
        f"{PREVIOUS_PATH}, so the floor, it and the new path are measured in one run",
    )  # fmt: skip
    p.add_argument("--customers", type=int, default=0, help="customers to seed (default from the mode)")
    p.add_argument("--bulk-clients", type=int, default=3)
    p.add_argument(
        "--sweep", type=_ints, default=[8, 32, 256, 1024], help="connection counts (default 8,32,256,1024)"
    )
    p.add_argument(
        "--open-loop", type=_floats, default=[1, 3, 10], help="multiples of capacity (default 1,3,10)"
    )
    p.add_argument(
        "--client-procs", type=int, default=max(2, CORES), help="load client processes (default 2)"
    )
    p.add_argument(
        "--max-connections", type=int, default=8000, help="open loop's connection cap over all processes"
    )
    p.add_argument("--retry-clients", type=int, default=48)
    p.add_argument("--retry-orders", type=int, default=1500)
    p.add_argument(
        "--retry-deadline", type=float, default=120.0, help="seconds the retrying clients may take"
    )
    p.add_argument("--slow-bodies", type=int, default=100, help="connections holding their body back")
    p.add_argument(
        "--phases", default=",".join(PHASES), help=f"phases to run (default all: {','.join(PHASES)})"
    )
    p.add_argument(
        "--chaos", action="store_true", help="also run the Redis-outage phase (private redis-server)"
    )
    p.add_argument("--chaos-outage", type=float, default=5.0, help="seconds the private Redis stays down")
    p.add_argument("--chaos-redis-port", type=int, default=stack.PRIVATE_REDIS_PORT)
    p.add_argument("--skip-others", action="store_true", help="skip email_bench and intake_bench")
    p.add_argument(
        "--max-seconds", type=float, default=0, help="bound on the whole run (default 1800, quick 600)"
    )
    p.add_argument("--no-write", action="store_true", help="print the report, write no results file")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 5.0)
        args.step_duration = min(args.step_duration, 3.0)
        args.retry_deadline = min(args.retry_deadline, 60.0)
    # Two per worker keeps every sync worker busy (one request in hand, one waiting)
    # without queueing so long that the shedder's queue-time limit refuses the unloaded run.
    args.connections = args.connections or CORES * 4
    args.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = args.phases - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; known: {', '.join(PHASES)}")
    args.max_seconds = args.max_seconds or (600.0 if args.quick else 1800.0)
    if args.server == "both":
        args.server, args.compare = "gunicorn", [*args.compare, "granian"]
    elif not args.compare and args.server != "gunicorn":
        args.compare = [PREVIOUS_PATH]
    # The original phases keep their customer range (as many as before the new phases
    # existed); the new phases draw from the customers seeded after it.
    # (a quick run gives them more than before, so that its overload and bulk have some).
    args.legacy_last = 200_000 if args.quick else 400_000
    args.customers = args.customers or (args.legacy_last + (150_000 if args.quick else 600_000))
    if args.customers <= args.legacy_last:
        p.error(f"--customers must be above {args.legacy_last:,}")
    if os.environ.get("BENCH_OTHERS", "1") == "0":  # the old switch for a quicker run while tuning
        args.skip_others = True
    return args


def _abort(signum: int, _frame) -> None:
    raise BenchAborted(f"signal {signal.Signals(signum).name}")


def setup(args: argparse.Namespace, figures: BenchRun) -> Run:
    log(f"creating database {stack.DB_NAME}, flushing Redis db {stack.REDIS_DB}")
    stack.database_create()
    stack.redis_flush()
    stack.django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    # As make serve does: the production settings serve static files through their
    # manifest, and a page without it is a 500 (the API and htmx fragments never notice).
    call_command("collectstatic", verbosity=0, interactive=False)
    log(f"migrated; seeding {args.customers:,} customers")
    seeded = stack.seed(customers=args.customers, online_units=20_000)
    warmed = stack.eligibility_warm(seeded.launch_id)
    log(f"seeded and warmed the eligibility cache ({warmed:,} customers)")
    return Run(
        args=args,
        figures=figures,
        seeded=seeded,
        legacy=load.Customers(first=ALLOCATOR_CUSTOMERS + 1, last=args.legacy_last),
        fresh=load.Customers(first=args.legacy_last + 1, last=args.customers),
    )


def phases(run: Run, main_spec: ServerSpec, compare: list[ServerSpec]) -> None:
    figures = run.figures
    # The variants first, each stopped after; the main server last, kept for what follows.
    for spec in [*compare, main_spec]:
        if not stack.server_available(spec):
            figures.notes.append(f"{spec.argv[0]} is not installed: {spec.label} was not measured")
            continue
        if "side" not in run.args.phases and spec is not main_spec:
            continue
        if "side" in run.args.phases:
            run.stack = side_by_side(run, spec)
        else:
            run.stack = run.start_stack(spec)
        if spec is not main_spec:
            run.stack.stop()
    if run.stack is None or run.stack.spec is not main_spec:
        raise RuntimeError(f"the main server {main_spec.label} could not start")
    figures.kept_server = main_spec.label
    run.phase("overload", lambda: overload(run))
    run.phase("bulk", lambda: bulk(run))
    run.stack.stop()
    run.phase("allocation", lambda: allocation(run))
    new = {"sweep", "open", "retry", "slow", "panel", "office"} & run.args.phases
    if new:
        # A fresh start, so the original phases' figures above are taken exactly as before.
        run.stack = run.start_stack(main_spec)
        warm(run, run.stack)
        run.phase("sweep", lambda: sweep(run))
        run.phase("open", lambda: open_loop(run))
        run.phase("retry", lambda: retrying(run))
        run.phase("slow", lambda: slow_bodies(run))
        run.phase("panel", lambda: store_panel(run))
        run.phase("office", lambda: office(run))
        figures.notes.append(f"processes alive before the stop: {run.stack.alive()}")
        run.stack.stop()
    if run.args.chaos:
        run.phase("chaos", lambda: chaos(run, main_spec))
        run.phase("database crash", lambda: database_crash(run))
    if not run.args.skip_others:
        other_benches(run)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = load.raise_fd_limit()
    env = stack.stack_env(port=0)
    os.environ.update(env)
    main_spec = stack.server_spec(
        args.server, workers=workers_for(args.server, args=args), backlog=args.backlog,
        env=_env_pairs(args.server_env), command=args.server_cmd,
    )  # fmt: skip
    compare = [parse_compare(c, args=args) for c in args.compare]
    figures = BenchRun(
        started=time.strftime("%Y-%m-%dT%H:%M:%S"),
        cores=CORES,
        platform=platform.platform(),
        python=platform.python_version(),
        workers=main_spec.workers,
        connections=args.connections,
        duration=args.duration,
        step_duration=args.step_duration,
        quick=args.quick,
        load_start=os.getloadavg()[0],
        somaxconn=stack.somaxconn(),
        nofile_limit=nofile,
    )
    if args.backlog > figures.somaxconn > 0:
        figures.notes.append(
            f"--backlog {args.backlog} is above somaxconn {figures.somaxconn}: the kernel cuts it"
        )
    signal.signal(signal.SIGTERM, _abort)
    signal.signal(signal.SIGALRM, _abort)
    signal.alarm(int(args.max_seconds))
    started = time.monotonic()
    try:
        run = setup(args, figures)
        phases(run, main_spec, compare)
    except (KeyboardInterrupt, BenchAborted) as exc:
        figures.failures.append(f"run stopped early: {type(exc).__name__} {exc}")
        log(f"stopping early: {type(exc).__name__} {exc}")
    except Exception as exc:  # the figures taken so far are still worth a report
        traceback.print_exc()
        figures.failures.append(f"run stopped by an error: {type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
        stack.stop_all()
    figures.total_seconds = time.monotonic() - started
    figures.load_end = os.getloadavg()[0]
    print(report(figures))
    if not args.no_write:
        path = write_results(figures, QUICK_RESULTS if args.quick else RESULTS)
        log(f"wrote {path.relative_to(ROOT)} and .json")
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
