"""Email throughput: the real outbox worker against a bare smtplib loop, in one run.

    .venv/bin/python bench/email_bench.py [--messages 20000]

On a separate database (launchday_bench_mail_<pid>, created, migrated, dropped after) it writes a
20,000-customer launch, starts an apology campaign to every registered customer without
an order (20,000 outbox rows, each with a signed unsubscribe link), then times:

1. one real Celery worker (one process, prefork, Redis broker) draining the outbox into a
   local SMTP sink (aiosmtpd in its own process): rendering from templates, one SMTP
   connection per batch, each message marked sent in PostgreSQL;
2. a bare smtplib loop sending the same number of pre-built messages of the same size
   over one connection to the same sink.

It prints a table and returns its figures (run() -> EmailFigures) for bench/run.py. Bounded: every
phase has a timeout and every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# After sys.path, for `python bench/email_bench.py`.
from bench.figures import EmailFigures  # noqa: E402
from bench.own_database import PG_URL, PYTHON, database_drop, database_env, database_fresh, worker_queue  # noqa: E402
from bench.stack import free_port  # noqa: E402

HOST = "127.0.0.1"
# Per run, so two runs at once (make bench and a standalone run) never share anything.
DB_NAME = f"launchday_bench_mail_{os.getpid()}"
REDIS_URL = f"redis://{HOST}:6379/6"
QUEUE = f"launchday-bench-mail-{os.getpid()}"
TIMEOUT = 600


def _env(port: int) -> dict[str, str]:
    return database_env(
        name=DB_NAME,
        **worker_queue(queue=QUEUE, redis_url=REDIS_URL),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=HOST,
        EMAIL_PORT=str(port),
        OUTBOX_DRAIN_ON_WORKER_START="0",
        OUTBOX_DRAIN_SECONDS="600",
    )


# --- the sink, in its own process --------------------------------------------------------


def sink_main(port: int, report: str) -> None:
    """Accept everything; on SIGTERM write how many messages and distinct Message-IDs came."""
    import email.parser
    import threading

    from aiosmtpd.controller import Controller

    ids: list[str] = []
    parser = email.parser.BytesHeaderParser()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            ids.append(parser.parsebytes(envelope.content).get("Message-ID", ""))
            return "250 OK"

    controller = Controller(Handler(), hostname=HOST, port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    controller.stop()
    Path(report).write_text(json.dumps({"received": len(ids), "unique": len(set(ids))}))


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        handle, self.report = tempfile.mkstemp(prefix="mail-sink-", suffix=".json")
        os.close(handle)
        self.proc = subprocess.Popen([PYTHON, __file__, "--sink", str(self.port), self.report], cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP(HOST, self.port, timeout=2) as smtp:
                    smtp.noop()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("SMTP sink did not start")

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return json.loads(Path(self.report).read_text())


# --- phases ------------------------------------------------------------------------------

SEED = """
import time
from django.contrib.auth import get_user_model
from django.utils import timezone
from customers.models import Campaign, Customer, Message, UpgradeRegistration
from inventory.models import SKU, Launch, Product
from orders.services.campaigns import launch_campaign_start
n = {n}
product = Product.objects.create(code="IP3G", name="iPhone 3G")
sku = SKU.objects.create(code="IP3G-8-BLK", product=product, name="iPhone 3G 8GB black")
launch = Launch.objects.create(slug="bench-mail", name="iPhone 3G", opens_at=timezone.now(),
                               closes_at=timezone.now() + timezone.timedelta(days=7))
launch.skus.set([sku])
Customer.objects.bulk_create([Customer(account_number=f"B{{i:08d}}", name=f"Customer {{i}}",
    email=f"b{{i:08d}}@example.com", postcode="SW1A 1AA") for i in range(n)], batch_size=5000)
ids = list(Customer.objects.values_list("id", flat=True))
UpgradeRegistration.objects.bulk_create([UpgradeRegistration(customer_id=c, launch=launch, preferred_sku=sku)
    for c in ids], batch_size=5000)
started = time.perf_counter()
campaign = launch_campaign_start(launch=launch, kind=Message.Kind.APOLOGY,
                          audience=Campaign.Audience.REGISTERED_WITHOUT_ORDER)
print("ENQUEUE", campaign.queued, time.perf_counter() - started, Message._meta.db_table)
"""


def _prepare(n: int, env: dict[str, str]) -> tuple[int, float, str]:
    """Create, migrate and seed the database: (messages queued, seconds to queue, outbox table)."""
    database_fresh(name=DB_NAME, env=env, timeout=300)
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", SEED.format(n=n)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("ENQUEUE"))
    _, queued, seconds, table = line.split()
    return int(queued), float(seconds), table


def _count_sent(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE status = 'sent'").fetchone()[0]


def _worker_phase(n: int, env: dict[str, str], concurrency: int, table: str) -> float:
    import psycopg
    from celery import Celery

    log = ROOT / "var" / "bench" / "email-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    app = Celery(broker=REDIS_URL)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--concurrency", str(concurrency),
             "--pool", "prefork", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        # One connection, polled five times a second: a new connection per poll costs
        # PostgreSQL a backend start, CPU taken from the worker being measured on 2 cores.
        # The poll's lag (at most 0.2 s) is under 1% of a phase of 20,000 messages.
        with psycopg.connect(f"{PG_URL}/{DB_NAME}", autocommit=True) as conn:
            started = time.perf_counter()
            for _ in range(concurrency):
                app.send_task("customers.tasks.outbox_drain", queue=QUEUE)
            deadline = time.monotonic() + TIMEOUT
            while _count_sent(conn, table) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not drain {n} in {TIMEOUT}s: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            return time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _sample_size(env: dict[str, str]) -> int:
    """Bytes of one real campaign email as the worker sends it, so the bare loop sends the same size."""
    code = (
        "from django.conf import settings\n"
        "from customers.models import Message\n"
        "from customers.services.outbox import message_mime, message_render\n"
        "m = Message.objects.select_related('customer', 'launch').first()\n"
        "print(len(message_mime(rendered=message_render(message=m), from_header=settings.DEFAULT_FROM_EMAIL,"
        " to=m.customer.email)))"
    )
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _bare_phase(n: int, port: int, size: int) -> float:
    from email.message import EmailMessage

    payloads = []
    for i in range(n):
        msg = EmailMessage()
        msg["Subject"] = "We're sorry: iPhone 3G"
        msg["From"] = "launch@launchday.example"
        msg["To"] = f"b{i:08d}@example.com"
        msg["Message-ID"] = f"<bare-{i}@launchday.example>"
        msg.set_content(("x" * 75 + "\n") * max((size - 300) // 76, 2))
        payloads.append((msg["To"], msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))))
    started = time.perf_counter()
    with smtplib.SMTP(HOST, port, timeout=30) as smtp:
        for to, payload in payloads:
            smtp.sendmail("launch@launchday.example", [to], payload)
    return time.perf_counter() - started


def run(n: int = 20_000, concurrency: int = 1) -> EmailFigures:
    sink = Sink()
    env = _env(sink.port)
    try:
        queued, enqueue_seconds, table = _prepare(n, env)
        size = _sample_size(env)
        worker_seconds = _worker_phase(queued, env, concurrency, table)
        bare_seconds = _bare_phase(queued, sink.port, size)
    finally:
        counts = sink.stop()
        database_drop(DB_NAME)
    worker_rate = queued / worker_seconds
    bare_rate = queued / bare_seconds
    result = EmailFigures(
        messages=queued,
        message_bytes=size,
        campaign_enqueue_per_s=round(queued / enqueue_seconds),
        worker_processes=concurrency,
        worker_emails_per_s=round(worker_rate),
        bare_smtplib_emails_per_s=round(bare_rate),
        ratio=round(worker_rate / bare_rate, 2),
        target_ratio=0.5,
        sink_received=counts["received"],
        sink_unique_message_ids=counts["unique"],
        duplicates_from_worker=counts["received"] - counts["unique"],
    )
    _print(result)
    return result


def _print(r: EmailFigures) -> None:
    rows = [
        ("campaign enqueue (rows/s)", f"{r.campaign_enqueue_per_s:,}"),
        (f"outbox worker, {r.worker_processes} process (emails/s)", f"{r.worker_emails_per_s:,}"),
        ("bare smtplib loop, one connection (emails/s)", f"{r.bare_smtplib_emails_per_s:,}"),
        ("worker / bare (target >= 0.5)", f"{r.ratio:.2f}"),
        ("sink received / distinct Message-IDs", f"{r.sink_received:,} / {r.sink_unique_message_ids:,}"),
    ]
    width = max(len(a) for a, _ in rows)
    print(f"\nEmail bench: {r.messages:,} messages of about {r.message_bytes:,} bytes")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value:>14}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        sink_main(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    run(n=args.messages, concurrency=args.concurrency)
