"""A PostgreSQL crash under load: a private cluster stopped (immediate) for a few seconds
while 48 retrying clients send 1,500 orders and the outbox mails them.

    .venv/bin/python bench/chaos_pg.py [--orders 1500] [--outage 5]

Never the shared PostgreSQL on 5432: the bench makes its own cluster (initdb, as the
postgres user) in var/bench/pgchaos on port 5441, its own stack on it (uvicorn with the
admission front, a Celery worker for the allocator and the email queue, beat), an SMTP
sink that counts Message-IDs, and removes the cluster afterwards. It reports every answer
the clients got (only 202 and 503 may appear), each customer's orders (exactly one), and
how many emails came twice (the outbox allows at most one per sending process per crash).
Run by bench/run.py with --chaos; its figures join the same report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load, stack  # noqa: E402
from bench.email_bench import Sink  # noqa: E402
from bench.figures import DatabaseCrashFigures  # noqa: E402
from bench.stack import BIN, HOST, LOGS, log  # noqa: E402

PORT = 5441
DATA = ROOT / "var" / "bench" / "pgchaos"
DB_NAME = "launchday_chaos"
REDIS_DB = 8
SENDERS = 2  # the Celery worker's processes: each may repeat at most one email per crash
CUSTOMERS = 3000


def pg_bin(program: str) -> str:
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
    return str(Path(bindir) / program)


def as_postgres(*argv: str) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: its tools run as the postgres user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120, check=True)


class PrivatePostgres:
    def __init__(self) -> None:
        self.url = f"postgres://postgres@{HOST}:{PORT}/{DB_NAME}"

    def init(self) -> None:
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(DATA, "postgres", "postgres")
        as_postgres(pg_bin("initdb"), "-D", str(DATA), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        as_postgres(
            pg_bin("pg_ctl"), "-D", str(DATA), "-l", str(DATA / "server.log"), "-w", "start",
            "-o", f"-p {PORT} -k /tmp -c listen_addresses={HOST} -c max_connections=200",
        )  # fmt: skip

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: the postmaster quits without a checkpoint, as a crash."""
        as_postgres(pg_bin("pg_ctl"), "-D", str(DATA), "-m", "immediate", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            as_postgres(pg_bin("pg_ctl"), "-D", str(DATA), "-m", "fast", "stop")
        shutil.rmtree(DATA, ignore_errors=True)


def env(pg: PrivatePostgres, *, web_port: int, sink_port: int) -> dict[str, str]:
    return {
        **stack.stack_env(port=web_port),
        "DATABASE_URL": pg.url,
        "REDIS_URL": f"redis://{HOST}:{stack.REDIS_PORT}/{REDIS_DB}",
        "CACHE_KEY_PREFIX": "chaos-pg",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": HOST,
        "EMAIL_PORT": str(sink_port),
        # A batch cut by the crash is sent again when its lease ends: short, to see it here.
        "OUTBOX_LEASE_SECONDS": "20",
        "DB_POOL_TIMEOUT": "2",
    }


def manage(environ: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=600, check=True,
    ).stdout  # fmt: skip


def floor_table(pg: PrivatePostgres) -> None:
    import psycopg

    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, customer text NOT NULL, "
            "sku text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )


def counts(pg: PrivatePostgres, first: int, orders: int) -> tuple[int, int, int, int]:
    """(customers without an order, with two or more, messages pending or sending, queued orders)."""
    import psycopg

    accounts = [f"D{n:07d}" for n in range(first, first + orders)]
    with psycopg.connect(pg.url, autocommit=True) as conn:
        without, twice = conn.execute(
            "SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM ("
            " SELECT (SELECT count(*) FROM orders_order o WHERE o.customer_id = c.id) AS n"
            " FROM customers_customer c WHERE c.account_number = ANY(%s)) x",
            [accounts],
        ).fetchone()
        unsent = conn.execute(
            "SELECT count(*) FROM customers_message WHERE status IN ('pending', 'sending')"
        ).fetchone()[0]
        queued = conn.execute("SELECT count(*) FROM orders_order WHERE status = 'queued'").fetchone()[0]
    return int(without), int(twice), int(unsent), int(queued)


def run(*, orders: int, outage: float, clients: int) -> DatabaseCrashFigures:
    pg = PrivatePostgres()
    sink = None
    processes: list = []
    try:
        log(f"chaos-pg: a private PostgreSQL on {PORT}")
        pg.init()
        pg.start()
        as_postgres(pg_bin("createdb"), "-h", HOST, "-p", str(PORT), "-U", "postgres", DB_NAME)
        sink = Sink()
        web_port = stack.free_port()
        environ = env(pg, web_port=web_port, sink_port=sink.port)
        import redis

        redis.Redis(host=HOST, port=stack.REDIS_PORT, db=REDIS_DB).flushdb()
        manage(environ, "migrate", "--noinput", "-v", "0")
        seeded = manage(
            environ, "seed_demo", "--customers", str(CUSTOMERS), "--stores", "4", "--online-units", "600"
        )
        key = next(line.split()[2] for line in seeded.splitlines() if line.startswith("partner "))
        floor_table(pg)
        import psycopg

        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(
                "UPDATE customers_customer SET postcode = %s WHERE account_number LIKE 'D%%'",
                [stack.POSTCODE],
            )  # stack.wait_http knocks on the floor's door
        stores = [f"S{n:03d}" for n in (3, 4)]  # the partner's half of four stores
        spec = stack.server_spec("uvicorn", workers=2, backlog=2048)
        fill = {"host": HOST, "port": web_port, "workers": 2, "backlog": 2048}
        web = stack._start_process("chaos-pg-web", [p.format(**fill) for p in spec.argv], environ)
        processes.append(web)
        celery = str(BIN / "celery")
        processes.append(
            stack._start_process(
                "chaos-pg-worker",
                [
                    celery,
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "celery,email",
                    "-l",
                    "warning",
                    "--concurrency",
                    str(SENDERS),
                ],
                environ,
            )
        )
        processes.append(
            stack._start_process(
                "chaos-pg-beat",
                [celery, "-A", "config", "beat", "-l", "warning", "-s", str(LOGS / "chaos-pg-beat")],
                environ,
            )
        )
        stack.wait_http(web_port)

        def crash() -> None:
            time.sleep(0.3)
            log(f"chaos-pg: PostgreSQL stopped (immediate) for {outage:g}s")
            pg.crash()
            time.sleep(outage)
            pg.start()
            log("chaos-pg: PostgreSQL back")

        phase, refs = load.retrying_run(
            port=web_port, key=key, stores=stores, clients=clients, orders=orders, first_customer=1,
            deadline=180, server="uvicorn", name="chaos-pg retrying clients", during=crash,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            without, twice, unsent, queued = counts(pg, 1, orders)
            if unsent == 0 and queued == 0:
                break
            time.sleep(1)
        time.sleep(2)  # the last sends reach the sink
    finally:
        for proc in processes:
            stack._stop_process(proc)
        mail = sink.stop() if sink is not None else {"received": 0, "unique": 0}
        try:
            without, twice, unsent, queued = counts(pg, 1, orders)
        except Exception:  # the cluster never came up: the figures say so
            without, twice, unsent, queued = orders, 0, -1, -1
        pg.remove()
    return DatabaseCrashFigures(
        outage_seconds=outage,
        retry=phase,
        customers_without_order=without,
        customers_with_two_or_more=twice,
        emails_received=mail["received"],
        emails_unique=mail["unique"],
        sending_processes=SENDERS,
        messages_left_unsent=unsent,
        orders_left_queued=queued,
        acknowledged=len(refs),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=1500)
    p.add_argument("--outage", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=48)
    p.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = p.parse_args()
    figures = run(orders=args.orders, outage=args.outage, clients=args.clients)
    if args.json:
        print(json.dumps(asdict(figures)))
    else:
        print(json.dumps(asdict(figures), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
