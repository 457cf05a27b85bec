"""Load generators of `make bench`; each returns typed figures (bench/figures.py).

- wrk runs (closed loop, bench/wrk/orders.lua): the floor and single-order admission;
- bulk clients (threads, 1,000 orders a request);
- the original 3x overload client (one asyncio process, a new connection a request);
- the multi-process client (bench/httpclient.py): closed loop at N connections for the
  connection sweep, and open loop at a fixed arrival rate;
- retrying clients that honour Retry-After with the same Idempotency-Key;
- slow bodies: connections that send headers and hold their body back.

Every request is a new customer (D + seven digits) from a range the caller hands out, so
no request is a repeat unless the phase means it to be (retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import resource
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from bench import httpclient
from bench.figures import BulkPhase, LoadPhase, RetryPhase, WrkRun, percentile
from bench.stack import BULK_PATH, HOST, LAUNCH, ORDERS_PATH, POSTCODE, ROOT, SKUS

LUA = ROOT / "bench" / "wrk" / "orders.lua"
REQUEST_TIMEOUT = 10.0


class Customers:
    """Hands out disjoint ranges of fresh customer numbers, so no request is a repeat."""

    def __init__(self, *, first: int, last: int):
        self.next, self.last = first, last

    def take(self, count: int) -> int:
        count = min(count, self.last - self.next + 1)
        first = self.next
        self.next += count
        return first

    @property
    def left(self) -> int:
        return self.last - self.next + 1


def order_body(n: int, stores: list[str]) -> dict[str, str]:
    sku = SKUS[n % 3]
    if stores and n % 5 < 3:
        return {
            "launch": LAUNCH,
            "customer": f"D{n:07d}",
            "postcode": POSTCODE,
            "sku": sku,
            "fulfilment": "collect",
            "store": stores[n % len(stores)],
        }
    return {
        "launch": LAUNCH,
        "customer": f"D{n:07d}",
        "postcode": POSTCODE,
        "sku": sku,
        "fulfilment": "delivery",
    }


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- wrk -------------------------------------------------------------------------------------


def wrk_run(
    *,
    port: int,
    path: str,
    duration: float,
    connections: int,
    threads: int,
    first: int,
    per_thread: int,
    key: str = "",
    stores: list[str] | None = None,
    refs_dir: Path | None = None,
) -> WrkRun:
    env = dict(os.environ)
    env.update(
        {
            "BENCH_PATH": path,
            "BENCH_KEY": key,
            "BENCH_LAUNCH": LAUNCH,
            "BENCH_POSTCODE": POSTCODE,
            "BENCH_FIRST": str(first),
            "BENCH_PER_THREAD": str(per_thread),
            "BENCH_STORES": ",".join(stores or []),
            "BENCH_REFS_DIR": str(refs_dir or ""),
        }
    )
    argv = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "10s",
        "-s", str(LUA), f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            lat = data["latency_us"]
            return WrkRun(
                path=path,
                connections=connections,
                seconds=data["duration_us"] / 1e6,
                requests=data["requests"],
                statuses=data["statuses"],
                retry_after=data["retry_after"],
                overflow=data["overflow"],
                errors=data["errors"],
                p50_ms=lat["p50"] / 1000,
                p90_ms=lat["p90"] / 1000,
                p99_ms=lat["p99"] / 1000,
                max_ms=lat["max"] / 1000,
                mean_ms=lat["mean"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result: {proc.stdout}\n{proc.stderr}")


def wrk_refs(refs_dir: Path) -> list[str]:
    refs = []
    for path in sorted(refs_dir.glob("refs-*.txt")):
        refs.extend(line for line in path.read_text().split() if line)
    return refs


# --- bulk clients (threads, http.client) ------------------------------------------------------


@dataclass
class _BulkTotals:
    requests: int = 0
    admitted: int = 0

    def __post_init__(self) -> None:
        self.items_other: Counter[str] = Counter()
        self.http_other: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.refs: list[str] = []


def bulk_run(
    *,
    port: int,
    key: str,
    customers: Customers,
    stores: list[str],
    clients: int,
    duration: float,
    size: int = 1000,
) -> tuple[BulkPhase, list[str]]:
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    totals = _BulkTotals()

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {key}"}
        while time.monotonic() < stop_at:
            with lock:
                if customers.left < size:
                    return
                first = customers.take(size)
            body = json.dumps({"orders": [order_body(n, stores) for n in range(first, first + size)]})
            started = time.monotonic()
            try:
                conn.request("POST", BULK_PATH, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with lock:
                    totals.http_other[type(exc).__name__] += 1
                continue
            elapsed = time.monotonic() - started
            ok, other, refs = 0, Counter[str](), []
            if resp.status == 200:
                for item in json.loads(payload)["results"]:
                    if item["status"] == 202:
                        ok += 1
                        refs.append(item["order"]["reference"])
                    else:
                        other[f"{item['status']} {item.get('error', {}).get('code', '')}"] += 1
            with lock:
                totals.requests += 1
                totals.latencies.append(elapsed)
                totals.refs.extend(refs)
                totals.admitted += ok
                if resp.status != 200:
                    totals.http_other[str(resp.status)] += 1
                totals.items_other.update(other)

    started = time.monotonic()
    workers = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=duration + 90)
    seconds = time.monotonic() - started
    lat = sorted(totals.latencies)
    phase = BulkPhase(
        clients=clients,
        orders_per_request=size,
        seconds=seconds,
        requests=totals.requests,
        admitted=totals.admitted,
        request_p50_ms=percentile(lat, 50) * 1000,
        request_p99_ms=percentile(lat, 99) * 1000,
        items_other=dict(totals.items_other),
        http_other=dict(totals.http_other),
    )
    return phase, totals.refs


# --- the original overload client (kept as it was, so its figures stay comparable) ------------


async def _one_request(port: int, payload: bytes) -> tuple[int, bool, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(payload)
        status = int((await reader.readline()).split()[1])
        length, retry_after = 0, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry_after = True
        body = await reader.readexactly(length) if length else b""
        return status, retry_after, body
    finally:
        writer.close()


async def _open_loop_legacy(
    *, port: int, key: str, first: int, rate: float, duration: float, stores: list[str], timeout: float
) -> tuple[list[tuple[int, bool, float, bytes]], int, float, float]:
    """Send `rate` requests per second on schedule, whatever the answers: an open loop.

    Latency is measured from each request's scheduled time, so a client falling behind
    (or a server queueing) shows in the figures instead of hiding (coordinated omission).
    """
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    results: list[tuple[int, bool, float, bytes]] = []
    tasks: set[asyncio.Task] = set()
    max_lag = 0.0

    async def one(n: int, scheduled: float) -> None:
        payload = httpclient.request_bytes(
            path=ORDERS_PATH, body=json.dumps(order_body(n, stores)).encode(), key=key, close=True
        )
        try:
            status, retry_after, body = await asyncio.wait_for(_one_request(port, payload), timeout)
        except TimeoutError:
            status, retry_after, body = -1, False, b""
        except OSError:
            status, retry_after, body = -2, False, b""
        except (ValueError, IndexError, asyncio.IncompleteReadError):
            status, retry_after, body = -3, False, b""
        results.append((status, retry_after, loop.time() - scheduled, body if status == 202 else b""))

    start = loop.time() + 0.05
    sent = 0
    while sent < total:
        now = loop.time()
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:
            scheduled = start + sent / rate
            max_lag = max(max_lag, now - scheduled)
            task = asyncio.create_task(one(first + sent, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.002)
    offered_seconds = loop.time() - start
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout + 5)
    return results, total, offered_seconds, max_lag


def overload_run(
    *,
    port: int,
    key: str,
    first: int,
    rate: float,
    duration: float,
    stores: list[str],
    server: str,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[LoadPhase, list[str]]:
    cpu = time.process_time()
    results, total, seconds, max_lag = asyncio.run(
        _open_loop_legacy(
            port=port, key=key, first=first, rate=rate, duration=duration, stores=stores, timeout=timeout
        )
    )
    cpu = time.process_time() - cpu
    answers: Counter[str] = Counter()
    admitted_lat, refused_lat, refs = [], [], []
    with_retry_after = 0
    for status, retry_after, latency, body in results:
        answers[str(status)] += 1
        if status == 202:
            admitted_lat.append(latency)
            with contextlib.suppress(ValueError, KeyError):
                refs.append(json.loads(body)["reference"])
        elif status in (429, 503):
            refused_lat.append(latency)
            with_retry_after += retry_after
    admitted_lat.sort()
    refused_lat.sort()
    errors = {httpclient.ERROR_NAMES.get(int(s), s): n for s, n in answers.items() if int(s) < 0}
    phase = LoadPhase(
        name="overload 3x (original client)",
        mode="open",
        server=server,
        seconds=seconds,
        connections=0,
        sent=total,
        answers=dict(answers),
        admitted=len(admitted_lat),
        refused=len(refused_lat),
        refused_with_retry_after=with_retry_after,
        admitted_p50_ms=percentile(admitted_lat, 50) * 1000,
        admitted_p99_ms=percentile(admitted_lat, 99) * 1000,
        refused_p50_ms=percentile(refused_lat, 50) * 1000,
        refused_p99_ms=percentile(refused_lat, 99) * 1000,
        errors={k: v for k, v in errors.items() if k != "timeout"},
        timeouts=errors.get("timeout", 0),
        # The load generator shares the machine: its CPU is taken from the server's.
        client_cpu_seconds=cpu,
        client_processes=1,
        asked_per_s=rate,
        lag_max_ms=max_lag * 1000,
    )
    return phase, refs


# --- the multi-process client: closed loop (sweep) and open loop ------------------------------


@dataclass(frozen=True)
class ClientJob:
    """What one client process does; picklable, so it crosses into a spawned process."""

    mode: str  # "closed" or "open"
    port: int
    key: str
    stores: tuple[str, ...]
    start: float  # time.monotonic() at which every process begins (one clock on Linux)
    duration: float
    index: int
    processes: int
    connections: int  # closed: this process's connections; open: its cap
    last_customer: int
    rate: float = 0.0  # open: the whole run's arrival rate, over all processes
    total: int = 0  # open: the whole run's scheduled requests
    timeout: float = REQUEST_TIMEOUT
    grace: float = 2.0  # open: how long past the schedule's end a late client may still send


class _SharedCustomers:
    """Customer numbers drawn in chunks from a counter shared by the client processes."""

    CHUNK = 256

    def __init__(self, counter, last: int):
        self.counter, self.last = counter, last
        self.next, self.stop = 0, 0

    def take(self) -> int | None:
        if self.next >= self.stop:
            with self.counter.get_lock():
                first = self.counter.value
                if first > self.last:
                    return None
                self.counter.value = min(first + self.CHUNK, self.last + 1)
                self.next, self.stop = first, self.counter.value
        n = self.next
        self.next += 1
        return n

    def take_block(self, count: int) -> int | None:
        """`count` consecutive numbers at once (an open loop knows its count in advance)."""
        with self.counter.get_lock():
            first = self.counter.value
            if first + count - 1 > self.last:
                return None
            self.counter.value = first + count
        return first


def order_json(n: int, stores: tuple[str, ...]) -> bytes:
    """order_body(n) as JSON, formatted directly: json.dumps costs the open loop's client
    several microseconds a request that the server needs more."""
    sku = SKUS[n % 3]
    if stores and n % 5 < 3:
        store = stores[n % len(stores)]
        text = (
            f'{{"launch":"{LAUNCH}","customer":"D{n:07d}","postcode":"{POSTCODE}","sku":"{sku}",'
            f'"fulfilment":"collect","store":"{store}"}}'
        )
    else:
        text = (
            f'{{"launch":"{LAUNCH}","customer":"D{n:07d}","postcode":"{POSTCODE}","sku":"{sku}",'
            f'"fulfilment":"delivery"}}'
        )
    return text.encode()


def _client_main(job: ClientJob, counter, out: Connection) -> None:
    """A spawned client process: run its share of the load, send its tally back."""
    cpu = time.process_time()
    tally = httpclient.Tally()
    customers = _SharedCustomers(counter, job.last_customer)
    try:
        if job.mode == "closed":
            take = customers.take
        else:
            share = httpclient.schedule_share(total=job.total, processes=job.processes, index=job.index)
            block = customers.take_block(share)
            numbers = iter(range(block, block + share)) if block is not None else iter(())
            tally.out_of_customers = block is None

            def take() -> int | None:
                return next(numbers, None)

        def next_payload() -> bytes | None:
            n = take()
            if n is None:
                return None
            return httpclient.request_bytes(path=ORDERS_PATH, body=order_json(n, job.stores), key=job.key)

        engine = httpclient.EpollLoad(
            host=HOST, port=job.port, max_connections=job.connections, timeout=job.timeout, tally=tally,
            next_payload=next_payload,
        )  # fmt: skip
        if job.mode == "closed":
            engine.run_closed(connections=job.connections, start=job.start, end=job.start + job.duration)
        else:
            engine.run_open(
                share=share, rate=job.rate, processes=job.processes, index=job.index, start=job.start,
                stop_by=job.start + job.duration + job.grace,
            )  # fmt: skip
    finally:
        tally.cpu_seconds = time.process_time() - cpu
        out.send(tally)
        out.close()


def run_clients(jobs: list[ClientJob], *, first_customer: int) -> tuple[list[httpclient.Tally], int]:
    """Run the jobs in spawned processes; (their tallies, the next unused customer number).

    Spawned, not forked: this process has Django, database connections and threads that a
    fork would copy.
    """
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", first_customer)
    procs, pipes = [], []
    for job in jobs:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_main, args=(job, counter, send), daemon=True)
        proc.start()
        send.close()
        procs.append(proc)
        pipes.append(receive)
    deadline = max(j.start for j in jobs) + max(j.duration + j.grace + j.timeout for j in jobs) + 30
    tallies = []
    try:
        for receive in pipes:
            if receive.poll(max(1.0, deadline - time.monotonic())):
                tallies.append(receive.recv())
            else:
                raise RuntimeError("a client process did not report before its deadline")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return tallies, counter.value


def tallies_phase(
    tallies: list[httpclient.Tally],
    *,
    name: str,
    mode: str,
    server: str,
    duration: float,
    connections: int = 0,
    asked_per_s: float = 0.0,
) -> tuple[LoadPhase, list[str]]:
    """Merge the processes' tallies into one phase's figures (and the acknowledged refs)."""
    answers: Counter[str] = Counter()
    admitted, refused, lags, refs = [], [], [], []
    for t in tallies:
        for status, latency in zip(t.statuses, t.latencies, strict=True):
            answers[str(status)] += 1
            if status == 202:
                admitted.append(latency)
            elif status in (429, 503):
                refused.append(latency)
        lags.extend(t.lags)
        refs.extend(t.references)
    admitted.sort()
    refused.sort()
    lags.sort()
    errors = {
        httpclient.ERROR_NAMES[int(s)]: n
        for s, n in answers.items()
        if int(s) < 0 and int(s) != httpclient.TIMEOUT
    }
    if mode == "open":
        # The offered period: the schedule's length, or longer if the client sent late.
        start = min(t.first_send for t in tallies)
        seconds = max(duration, max(t.last_send for t in tallies) - start)
    else:
        seconds = duration
    phase = LoadPhase(
        name=name,
        mode=mode,
        server=server,
        seconds=seconds,
        connections=connections if mode == "closed" else sum(t.peak_connections for t in tallies),
        sent=sum(t.sent for t in tallies),
        answers=dict(sorted(answers.items())),
        admitted=len(admitted),
        refused=len(refused),
        refused_with_retry_after=sum(t.retry_after for t in tallies),
        admitted_p50_ms=percentile(admitted, 50) * 1000,
        admitted_p99_ms=percentile(admitted, 99) * 1000,
        refused_p50_ms=percentile(refused, 50) * 1000,
        refused_p99_ms=percentile(refused, 99) * 1000,
        errors=errors,
        timeouts=answers.get(str(httpclient.TIMEOUT), 0),
        client_cpu_seconds=sum(t.cpu_seconds for t in tallies),
        client_processes=len(tallies),
        asked_per_s=asked_per_s,
        lag_p99_ms=percentile(lags, 99) * 1000,
        lag_max_ms=(lags[-1] * 1000) if lags else 0.0,
        unsent=sum(t.unsent for t in tallies),
        out_of_customers=any(t.out_of_customers for t in tallies),
    )
    return phase, refs


def closed_loop(
    *,
    port: int,
    key: str,
    stores: list[str],
    connections: int,
    duration: float,
    processes: int,
    first_customer: int,
    last_customer: int,
    server: str,
    name: str,
) -> tuple[LoadPhase, list[str], int]:
    """N connections, each sending its next order on an answer; (phase, refs, next customer)."""
    processes = max(1, min(processes, connections))
    start = time.monotonic() + 2.0  # time for the spawned processes to import and connect
    jobs = [
        ClientJob(
            mode="closed",
            port=port,
            key=key,
            stores=tuple(stores),
            start=start,
            duration=duration,
            index=i,
            processes=processes,
            connections=len(range(i, connections, processes)),
            last_customer=last_customer,
        )  # fmt: skip
        for i in range(processes)
    ]
    tallies, next_customer = run_clients(jobs, first_customer=first_customer)
    phase, refs = tallies_phase(
        tallies, name=name, mode="closed", server=server, duration=duration, connections=connections
    )
    return phase, refs, next_customer


def open_loop(
    *,
    port: int,
    key: str,
    stores: list[str],
    rate: float,
    duration: float,
    processes: int,
    max_connections: int,
    first_customer: int,
    last_customer: int,
    server: str,
    name: str,
) -> tuple[LoadPhase, list[str], int]:
    """`rate` requests a second for `duration` seconds, on schedule; (phase, refs, next customer)."""
    total = int(rate * duration)
    start = time.monotonic() + 2.0
    jobs = [
        ClientJob(
            mode="open",
            port=port,
            key=key,
            stores=tuple(stores),
            start=start,
            duration=duration,
            index=i,
            processes=processes,
            connections=max(1, max_connections // processes),
            last_customer=last_customer,
            rate=rate,
            total=total,
        )  # fmt: skip
        for i in range(processes)
    ]
    tallies, next_customer = run_clients(jobs, first_customer=first_customer)
    phase, refs = tallies_phase(
        tallies, name=name, mode="open", server=server, duration=duration, asked_per_s=rate
    )
    return phase, refs, next_customer


# --- retrying clients -------------------------------------------------------------------------


@dataclass
class _OrderOutcome:
    attempts: int = 0
    final: int | None = None
    reference: str | None = None
    admitted_after: float | None = None


async def _retrying(
    *,
    port: int,
    key: str,
    stores: list[str],
    clients: int,
    first_customer: int,
    orders: int,
    deadline: float,
    label: str,
    during: Callable[[], None] | None = None,
) -> tuple[list[_OrderOutcome], Counter[str], float]:
    tally = httpclient.Tally()
    pool = httpclient.Pool(
        host=HOST, port=port, max_connections=orders + 64, timeout=REQUEST_TIMEOUT, tally=tally
    )
    answers: Counter[str] = Counter()
    outcomes = [_OrderOutcome() for _ in range(orders)]
    started = time.monotonic()
    stop_at = started + deadline

    async def order(i: int) -> None:
        n = first_customer + i
        body = json.dumps(order_body(n, stores), separators=(",", ":")).encode()
        # One key per order for all its tries: a retry of an order that was in fact
        # admitted must get the original answer, never a second order.
        payload = httpclient.request_bytes(
            path=ORDERS_PATH, body=body, key=key, idempotency_key=f"{label}-{n}"
        )
        outcome = outcomes[i]
        while time.monotonic() < stop_at:
            outcome.attempts += 1
            answer = await pool.request(payload)
            answers[str(answer.status)] += 1
            if answer.status in (429, 503):
                wait = answer.retry_after if answer.retry_after is not None else 1.0
            elif answer.status < 0 or answer.status >= 500:
                wait = 1.0  # no answer or a server error: the order may or may not exist; retry
            else:
                outcome.final = answer.status
                if answer.status == 202:
                    outcome.reference = answer.reference
                    outcome.admitted_after = time.monotonic() - started
                return
            await asyncio.sleep(min(wait, max(0.0, stop_at - time.monotonic())))

    async def client(c: int) -> None:
        # Each client sends all its orders at once, as a partner's batch job or a page of
        # impatient customers would.
        await asyncio.gather(*(order(i) for i in range(c, orders, clients)))

    side = asyncio.get_running_loop().run_in_executor(None, during) if during else None
    await asyncio.gather(*(client(c) for c in range(clients)))
    if side is not None:
        await side
    await pool.close()
    return outcomes, answers, time.monotonic() - started


def retrying_run(
    *,
    port: int,
    key: str,
    stores: list[str],
    clients: int,
    orders: int,
    first_customer: int,
    deadline: float,
    server: str,
    name: str,
    during: Callable[[], None] | None = None,
) -> tuple[RetryPhase, list[str]]:
    """`clients` clients send `orders` orders (fresh customers) and retry each until it has a
    final answer, honouring Retry-After; `during` runs beside them in a thread (chaos)."""
    outcomes, answers, seconds = asyncio.run(
        _retrying(
            port=port, key=key, stores=stores, clients=clients, first_customer=first_customer, orders=orders,
            deadline=deadline, label=f"bench-{name.replace(' ', '-')}-{first_customer}", during=during,
        )
    )  # fmt: skip
    refs = [o.reference for o in outcomes if o.final == 202 and o.reference]
    admitted = sum(1 for o in outcomes if o.final == 202)
    final_other = Counter(str(o.final) for o in outcomes if o.final is not None and o.final != 202)
    times = [o.admitted_after for o in outcomes if o.admitted_after is not None]
    errors = {httpclient.ERROR_NAMES[int(s)]: n for s, n in answers.items() if int(s) < 0 and int(s) != -1}
    phase = RetryPhase(
        name=name,
        server=server,
        clients=clients,
        orders=orders,
        attempts=sum(o.attempts for o in outcomes),
        answers=dict(sorted(answers.items())),
        admitted=admitted,
        final_other=dict(final_other),
        unfinished=sum(1 for o in outcomes if o.final is None),
        refusals=answers.get("429", 0) + answers.get("503", 0),
        errors=errors,
        timeouts=answers.get(str(httpclient.TIMEOUT), 0),
        seconds_to_admit_all=max(times) if admitted == orders and times else None,
        seconds=seconds,
        distinct_references=len(set(refs)),
    )
    return phase, refs


# --- slow bodies ------------------------------------------------------------------------------


@dataclass
class SlowBodies:
    """Connections that announce a body and then dribble it (a byte a second) or stall."""

    opened: int = 0
    closed_by_server: int = 0


async def _slow_connection(
    port: int, key: str, dribble: bool, stop: threading.Event, seen: SlowBodies
) -> None:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return
    seen.opened += 1
    head = (
        f"POST {ORDERS_PATH} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Authorization: Api-Key {key}\r\nContent-Length: 4096\r\n\r\n{{"
    )
    writer.write(head.encode())
    try:
        while not stop.is_set():
            if reader.at_eof():
                seen.closed_by_server += 1
                return
            if dribble:
                writer.write(b" ")
            with contextlib.suppress(TimeoutError):
                # Anything the server sends (an error, EOF) before the body is complete.
                data = await asyncio.wait_for(reader.read(1024), 1.0)
                if not data:
                    seen.closed_by_server += 1
                    return
    except OSError:
        seen.closed_by_server += 1
    finally:
        writer.transport.abort()


def slow_bodies_hold(
    *, port: int, key: str, connections: int, stop: threading.Event, seen: SlowBodies
) -> None:
    """Hold `connections` slow requests open until `stop` is set; run it in a thread."""

    async def hold() -> None:
        await asyncio.gather(
            *(_slow_connection(port, key, i % 2 == 0, stop, seen) for i in range(connections)),
            return_exceptions=True,
        )

    asyncio.run(hold())
