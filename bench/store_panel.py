"""The store page's live panel at launch scale: what one staff browser's poll costs.

Every staff browser polls its store's panel every 2 s (and the list of orders to hand over
every 15 s), all morning, on the cores admission needs. This phase takes the bench's
database after the load phases, brings one partner store to a launch-morning backlog
(24,000 click-and-collect orders waiting, admitted in bulk and waitlisted by the
allocator), signs a member of its staff in, and measures over HTTP against the running
stack:

- sixty browsers' polls as an open loop (30 panel polls/s and 4 list polls/s, scheduled,
  latency counted from the schedule): p50/p99, bytes per poll;
- the most polls/s eight connections get, and the web server's CPU per poll, so the cost
  of N browsers reads as cores.

Target (issue 10): p99 <= 20 ms and <= 10 KB per poll.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from dataclasses import dataclass

from bench import httpclient
from bench.figures import StorePanelFigures, StorePollFigures, percentile
from bench.stack import HOST, Stack, log, wait_allocator

WAITING_TARGET = 24_000
BROWSERS = 60
PANEL_EVERY_S = 2.0
LIST_EVERY_S = 15.0


def clock_ticks_of_group(pgid: int) -> int:
    """utime + stime (clock ticks) of every live process in a process group: the web
    server's master and its workers."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 3, pgrp 5, utime 14, stime 15 (1-based).
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


@dataclass
class Backlog:
    store_code: str
    waiting: int
    ready: int
    admitted_here: int


def backlog_build(*, launch_id: int, store_code: str, first_customer: int, customers: int) -> Backlog:
    """Admit collect orders at one store until WAITING_TARGET wait there, through bulk
    admission (as a partner's bulk call would), and let the allocator waitlist them."""
    from inventory.models import Launch
    from inventory.selectors import location_of_store
    from orders.selectors.availability import pool_waiting
    from orders.selectors.store_page import store_collect
    from orders.services.admission import OrderRequest
    from orders.services.bulk import MAX_BULK_ITEMS, orders_admit_bulk
    from stores.models import Partner, Store

    launch = Launch.objects.get(pk=launch_id)
    store = Store.objects.get(code=store_code)
    location = location_of_store(store=store)
    assert location is not None
    sku_ids = list(launch.skus.values_list("pk", flat=True))
    sku_codes = list(launch.skus.order_by("code").values_list("code", flat=True))
    missing = max(
        WAITING_TARGET - sum(pool_waiting(launch=launch, pool_id=location.pk, sku_ids=sku_ids).values()), 0
    )
    missing = min(missing, customers)
    partner = Partner.objects.get(pk=store.partner_id) if store.partner_id else None
    admitted = 0
    for start in range(0, missing, MAX_BULK_ITEMS):
        requests = [
            OrderRequest(
                launch=launch.slug,
                customer=f"D{first_customer + n:07d}",
                sku=sku_codes[n % len(sku_codes)],
                fulfilment="collect",
                store=store.code,
            )
            for n in range(start, min(start + MAX_BULK_ITEMS, missing))
        ]
        outcomes = orders_admit_bulk(
            requests=requests, channel="partner", partner_id=partner.pk if partner else None
        )
        admitted += sum(1 for o in outcomes if o.refusal is None)
    wait_allocator(launch_id, 120, after="store panel backlog")
    collect = store_collect(store=store, launch=launch, pool_id=location.pk, sku_ids=sku_ids)
    return Backlog(store_code=store.code, waiting=collect.owed, ready=collect.ready, admitted_here=admitted)


def staff_cookie(*, store_code: str) -> str:
    """A signed-in member of the store's staff, as the browser's Cookie header."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from stores.models import StaffMembership, Store

    user, _ = get_user_model().objects.get_or_create(username=f"bench-staff-{store_code.lower()}")
    StaffMembership.objects.get_or_create(user=user, store=Store.objects.get(code=store_code))
    client = Client()
    client.force_login(user)
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


def get_bytes(path: str, cookie: str) -> bytes:
    """A browser's poll: htmx's header, the session cookie, and gzip accepted."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nHX-Request: true\r\n"
        f"Accept-Encoding: gzip, deflate, br\r\nCookie: {cookie}\r\n\r\n"
    ).encode()


async def _open_loop(
    *, port: int, streams: list[tuple[str, bytes, float]], seconds: float
) -> dict[str, tuple[list[float], list[int], list[int], list[int]]]:
    """Each stream (name, request, rate/s) sent on its own schedule; per stream the
    latencies from the schedule (ms), the statuses, the body sizes on the wire and
    uncompressed."""
    tally = httpclient.Tally()
    pool = httpclient.Pool(host=HOST, port=port, max_connections=256, timeout=10.0, tally=tally)
    seen: dict[str, tuple[list[float], list[int], list[int], list[int]]] = {
        name: ([], [], [], []) for name, _, _ in streams
    }
    started = time.monotonic()

    async def one(name: str, payload: bytes, due: float) -> None:
        answer = await pool.request(payload)
        latencies, statuses, sizes, pages = seen[name]
        latencies.append((time.monotonic() - due) * 1000)
        statuses.append(answer.status)
        sizes.append(len(answer.body))
        pages.append(
            len(gzip.decompress(answer.body)) if answer.body[:2] == b"\x1f\x8b" else len(answer.body)
        )

    async def stream(name: str, payload: bytes, rate: float) -> None:
        tasks = []
        k = 0
        while (due := started + k / rate) < started + seconds:
            await asyncio.sleep(max(due - time.monotonic(), 0))
            tasks.append(asyncio.create_task(one(name, payload, due)))
            k += 1
        await asyncio.gather(*tasks)

    try:
        await asyncio.gather(*(stream(n, p, r) for n, p, r in streams))
    finally:
        await pool.close()
    return seen


async def _closed_loop(*, port: int, payload: bytes, connections: int, seconds: float) -> tuple[int, int]:
    """(answers, 200 answers) of `connections` connections each polling back to back."""
    tally = httpclient.Tally()
    pool = httpclient.Pool(host=HOST, port=port, max_connections=connections, timeout=10.0, tally=tally)
    end = time.monotonic() + seconds
    counts = [0, 0]

    async def client() -> None:
        while time.monotonic() < end:
            answer = await pool.request(payload)
            counts[0] += 1
            counts[1] += answer.status == 200

    try:
        await asyncio.gather(*(client() for _ in range(connections)))
    finally:
        await pool.close()
    return counts[0], counts[1]


def poll_figures(
    name: str, rate: float, seen: tuple[list[float], list[int], list[int], list[int]]
) -> StorePollFigures:
    latencies, statuses, sizes, pages = seen
    ordered = sorted(latencies)
    return StorePollFigures(
        name=name,
        per_s=rate,
        polls=len(statuses),
        ok=sum(1 for s in statuses if s == 200),
        p50_ms=percentile(ordered, 50),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else 0.0,
        bytes_max=max(sizes, default=0),
        bytes_mean=sum(sizes) / len(sizes) if sizes else 0.0,
        page_bytes_max=max(pages, default=0),
    )


def run(*, running: Stack, launch_id: int, store_code: str, first_customer: int, customers: int,
        seconds: float) -> StorePanelFigures:  # fmt: skip
    log(f"store panel: bringing {store_code} to {WAITING_TARGET:,} collect orders waiting")
    backlog = backlog_build(
        launch_id=launch_id, store_code=store_code, first_customer=first_customer, customers=customers
    )
    log(f"store panel: {backlog.waiting:,} waiting, {backlog.ready} ready at {store_code}")
    cookie = staff_cookie(store_code=store_code)
    panel = get_bytes(f"/stores/{store_code}/", cookie)
    ready_list = get_bytes(f"/stores/{store_code}/ready/", cookie)
    asyncio.run(_open_loop(port=running.port, streams=[("warm", panel, 20.0)], seconds=1.0))
    panel_rate, list_rate = BROWSERS / PANEL_EVERY_S, BROWSERS / LIST_EVERY_S
    seen = asyncio.run(
        _open_loop(
            port=running.port,
            streams=[("panel", panel, panel_rate), ("ready list", ready_list, list_rate)],
            seconds=seconds,
        )
    )
    web_pgid = running.procs[0][1].pid
    ticks_before = clock_ticks_of_group(web_pgid)
    answers, ok = asyncio.run(_closed_loop(port=running.port, payload=panel, connections=8, seconds=seconds))
    cpu_seconds = (clock_ticks_of_group(web_pgid) - ticks_before) / os.sysconf("SC_CLK_TCK")
    return StorePanelFigures(
        store=store_code,
        waiting=backlog.waiting,
        ready=backlog.ready,
        browsers=BROWSERS,
        panel=poll_figures("panel", panel_rate, seen["panel"]),
        ready_list=poll_figures("ready list", list_rate, seen["ready list"]),
        most_polls_per_s=ok / seconds if seconds else 0.0,
        closed_answers=answers,
        web_cpu_ms_per_poll=cpu_seconds * 1000 / answers if answers else 0.0,
    )
