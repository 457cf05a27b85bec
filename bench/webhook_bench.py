"""Webhook delivery: the real sender in a Celery worker against bare keep-alive POST loops,
and the latency from commit to delivery while admissions run, in one run.

    .venv/bin/python bench/webhook_bench.py [--events 20000] [--quick]

On its own database (launchday_bench_hooks_<pid>, created, migrated, dropped after):
1. N events for one partner endpoint (a fast receiver on loopback, its own process), then
   one Celery worker (prefork, Redis) delivers them: claims, signs, POSTs, logs each attempt;
2. the same bodies POSTed over one keep-alive connection by a bare loop, with httpx and
   with the standard library's http.client (the sender's own client since issue 13's
   follow-up; httpx stays as the earlier yardstick);
3. while another process admits orders as fast as the bulk service takes them, probe
   events are committed every 20 ms: the time from each commit to its arrival (p50, p99).

Bounded: every phase has a timeout, and every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# After sys.path, for `python bench/webhook_bench.py`.
from bench.figures import WebhookFigures  # noqa: E402
from bench.own_database import PG_URL, PYTHON, database_drop, database_env, database_fresh, worker_queue  # noqa: E402
from bench.stack import free_port  # noqa: E402

HOST = "127.0.0.1"
DB_NAME = f"launchday_bench_hooks_{os.getpid()}"
REDIS_URL = f"redis://{HOST}:6379/6"
QUEUE = f"launchday-bench-hooks-{os.getpid()}"
TIMEOUT = 600


def _env() -> dict[str, str]:
    return database_env(
        name=DB_NAME,
        **worker_queue(queue=QUEUE, redis_url=REDIS_URL),
        WEBHOOK_REQUIRE_HTTPS="0",
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        WEBHOOK_DRAIN_SECONDS="600",
    )


# --- the receiver, in its own process: answers 200 at once, records arrivals -------------


def receiver_main(port: int, report: str) -> None:
    arrivals: dict[str, float] = {}
    count = [0]

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end].lower()
                at = head.find(b"content-length:")
                length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                count[0] += 1
                if b'"probe"' in body:
                    arrivals[json.loads(body)["data"]["probe"]] = time.time()
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Receiver, HOST, port, backlog=512)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(serve())
    Path(report).write_text(json.dumps({"received": count[0], "probes": arrivals}))


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        handle, self.report = tempfile.mkstemp(prefix="hook-receiver-", suffix=".json")
        os.close(handle)
        self.proc = subprocess.Popen([PYTHON, __file__, "--receiver", str(self.port), self.report], cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("receiver did not start")

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return json.loads(Path(self.report).read_text())


# --- phases ------------------------------------------------------------------------------

SEED = """
import time
from django.utils import timezone
from customers.models import Customer, UpgradeRegistration
from inventory.models import SKU, Launch, Product
from stores.models import Partner
from stores.services.webhooks import EventIn, webhook_endpoint_create, webhook_events_enqueue
n, url = {n}, {url!r}
partner = Partner.objects.create(code="cpw", name="Carphone Warehouse")
endpoint = webhook_endpoint_create(partner=partner, url=url, event_types=["order.allocated", "order.cancelled"])
product = Product.objects.create(code="IP3G", name="iPhone 3G")
sku = SKU.objects.create(code="IP3G-8-BLK", product=product, name="iPhone 3G 8GB black")
launch = Launch.objects.create(slug="bench-hooks", name="iPhone 3G", opens_at=timezone.now(),
                               closes_at=timezone.now() + timezone.timedelta(days=7))
launch.skus.set([sku])
Customer.objects.bulk_create([Customer(account_number=f"H{{i:08d}}", name=f"C {{i}}", email=f"h{{i}}@example.com",
    postcode="SW1A 1AA") for i in range(50_000)], batch_size=10000)
UpgradeRegistration.objects.bulk_create([UpgradeRegistration(customer_id=c, launch=launch, preferred_sku=sku)
    for c in Customer.objects.values_list("id", flat=True)], batch_size=10000)
data = dict(reference="ABCD2345EFGH", launch="bench-hooks", customer="H00000001", sku="IP3G-8-BLK",
            fulfilment="delivery", store=None, channel="partner", status="allocated", queue_position=None,
            created_at=timezone.now())
started = time.perf_counter()
for start in range(0, n, 2000):
    webhook_events_enqueue(events=[EventIn(partner.pk, "order.allocated", data, "ABCD2345EFGH")
                                   for _ in range(min(2000, n - start))])
print("ENQUEUE", n, time.perf_counter() - started)
"""

ADMIT = """
import time
from orders.services.admission import OrderRequest
from orders.services.bulk import orders_admit_bulk
admitted, i, started = 0, 0, time.perf_counter()
while time.perf_counter() - started < {seconds}:
    batch = [OrderRequest(launch="bench-hooks", customer=f"H{{j:08d}}", sku="IP3G-8-BLK", fulfilment="delivery",
                          store=None) for j in range(i, i + 500)]
    i += 500
    admitted += sum(o.order is not None for o in orders_admit_bulk(requests=batch, channel="online", partner_id=None))
print("ADMITTED", admitted, time.perf_counter() - started)
"""

PROBE = """
import json, time
from django.db import transaction
from stores.models import Partner
from stores.services.webhooks import EventIn, webhook_events_enqueue
partner = Partner.objects.get(code="cpw")
committed = {{}}
for i in range({probes}):
    with transaction.atomic():
        webhook_events_enqueue(events=[EventIn(partner.pk, "order.cancelled", {{"probe": str(i)}}, "probe")])
    committed[str(i)] = time.time()
    time.sleep(0.02)
print("COMMITTED", json.dumps(committed))
"""


def _shell(code: str, env: dict[str, str], timeout: float = TIMEOUT) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        timeout=timeout,
    ).stdout  # fmt: skip


class Worker:
    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.log = ROOT / "var" / "bench" / "webhook-worker.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                # `webhooks` too: the sender's own nudges are routed there (on the bench's Redis db).
                [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", f"{QUEUE},webhooks", "--concurrency", str(concurrency),
                 "--pool", "prefork", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"ready." not in self.log.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"worker did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def _delivered(conn) -> int:
    return conn.execute("SELECT count(*) FROM stores_webhookdelivery WHERE status = 'delivered'").fetchone()[
        0
    ]


def _worker_phase(n: int, env: dict[str, str], concurrency: int) -> tuple[float, Worker]:
    import psycopg

    worker = Worker(env, concurrency)
    with psycopg.connect(f"{PG_URL}/{DB_NAME}", autocommit=True) as conn:
        started = time.perf_counter()
        _shell("from stores.services.webhooks import webhooks_nudge_now; webhooks_nudge_now()", env)
        deadline = time.monotonic() + TIMEOUT
        while _delivered(conn) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not delivered in {TIMEOUT}s: {worker.log.read_text()[-2000:]}")
            time.sleep(0.1)
        return time.perf_counter() - started, worker


def _sample_body(env: dict[str, str]) -> bytes:
    code = (
        "from stores.services.webhooks.sender import Claimed, request_body\n"
        "from stores.models import WebhookEvent\n"
        "e = WebhookEvent.objects.first()\n"
        "print(request_body(Claimed(0, 0, e.public_id, e.type, e.occurred_at, e.data)).decode())"
    )
    return _shell(code, env).strip().splitlines()[-1].encode()


def _bare_httpx(n: int, port: int, body: bytes) -> float:
    import httpx

    headers = {"content-type": "application/json", "webhook-id": "msg_x", "webhook-timestamp": "0",
               "webhook-signature": "v1,x"}  # fmt: skip
    with httpx.Client(http1=True, follow_redirects=False, timeout=15) as client:
        started = time.perf_counter()
        for _ in range(n):
            client.post(f"http://{HOST}:{port}/hook", content=body, headers=headers).read()
        return time.perf_counter() - started


def _bare_http_client(n: int, port: int, body: bytes) -> float:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=15)
    started = time.perf_counter()
    for _ in range(n):
        conn.request("POST", "/hook", body=body, headers={"content-type": "application/json"})
        conn.getresponse().read()
    conn.close()
    return time.perf_counter() - started


def _latency_phase(env: dict[str, str], probes: int) -> tuple[dict[str, float], int, float]:
    seconds = probes * 0.025 + 3
    admit = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "-c", ADMIT.format(seconds=seconds)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    out = _shell(PROBE.format(probes=probes), env, timeout=seconds + 60)
    committed = json.loads(next(x for x in out.splitlines() if x.startswith("COMMITTED")).split(" ", 1)[1])
    admitted_out, _ = admit.communicate(timeout=seconds + 60)
    _, admitted, took = next(x for x in admitted_out.splitlines() if x.startswith("ADMITTED")).split()
    time.sleep(1.0)  # the last probes arrive
    return committed, int(admitted), float(took)


def run(n: int = 20_000, probes: int = 500, concurrency: int = 1) -> WebhookFigures:
    receiver = Receiver()
    env = _env()
    worker = None
    try:
        database_fresh(name=DB_NAME, env=env, timeout=300)
        out = _shell(SEED.format(n=n, url=f"http://{HOST}:{receiver.port}/hook"), env)
        _, _, enqueue_seconds = next(x for x in out.splitlines() if x.startswith("ENQUEUE")).split()
        body = _sample_body(env)
        worker_seconds, worker = _worker_phase(n, env, concurrency)
        bare_httpx = _bare_httpx(n, receiver.port, body)
        bare_stdlib = _bare_http_client(n, receiver.port, body)
        committed, admitted, admit_seconds = _latency_phase(env, probes)
    finally:
        if worker is not None:
            worker.stop()
        report = receiver.stop()
        database_drop(DB_NAME)
    latencies = sorted(
        (report["probes"][k] - committed[k]) * 1000 for k in committed if k in report["probes"]
    )
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    result = WebhookFigures(
        events=n,
        body_bytes=len(body),
        enqueue_per_s=round(n / float(enqueue_seconds)),
        worker_processes=concurrency,
        worker_deliveries_per_s=round(n / worker_seconds),
        bare_httpx_posts_per_s=round(n / bare_httpx),
        bare_http_client_posts_per_s=round(n / bare_stdlib),
        ratio=round(bare_httpx / worker_seconds, 2),
        ratio_to_http_client=round(bare_stdlib / worker_seconds, 2),
        target_ratio=0.5,
        admissions_per_s_meanwhile=round(admitted / admit_seconds),
        probes=len(committed),
        probes_delivered=len(latencies),
        latency_p50_ms=round(quantiles[49], 1),
        latency_p99_ms=round(quantiles[98], 1),
    )
    _print(result)
    return result


def _print(r: WebhookFigures) -> None:
    rows = [
        ("events enqueued (rows/s)", f"{r.enqueue_per_s:,}"),
        (f"webhook worker, {r.worker_processes} process (deliveries/s)", f"{r.worker_deliveries_per_s:,}"),
        ("bare httpx loop, one keep-alive connection (POSTs/s)", f"{r.bare_httpx_posts_per_s:,}"),
        ("bare http.client loop, one keep-alive connection (POSTs/s)", f"{r.bare_http_client_posts_per_s:,}"),
        ("worker / bare httpx", f"{r.ratio:.2f}"),
        ("worker / bare http.client (target >= 0.5)", f"{r.ratio_to_http_client:.2f}"),
        ("admissions meanwhile (orders/s)", f"{r.admissions_per_s_meanwhile:,}"),
        ("commit to delivery p50 / p99 (ms)", f"{r.latency_p50_ms} / {r.latency_p99_ms}"),
        ("probes delivered", f"{r.probes_delivered} of {r.probes}"),
    ]
    width = max(len(a) for a, _ in rows)
    print(f"\nWebhook bench: {r.events:,} events of {r.body_bytes} bytes to a loopback receiver")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value:>14}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--receiver":
        receiver_main(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 events and 100 probes")
    args = parser.parse_args()
    if args.quick:
        args.events, args.probes = 2_000, 100
    run(n=args.events, probes=args.probes, concurrency=args.concurrency)
