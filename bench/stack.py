"""The bench's stack: its database, seed data, environment and processes.

Creates and seeds the launchday_bench database, and starts and stops the web server,
one Celery worker and beat (each in its own process group), and, for the opt-in chaos
phase, a private redis-server on its own port. Every process started here is registered,
so `stop_all()` ends them all, also on Ctrl-C or an error.

Raw SQL names tables through the models (`_meta.db_table`, reached from Order's foreign
keys where a model may move between apps), so the bench survives a model's move.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.figures import Drain, ServerSpec
from bench.own_database import database_recreate

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LOGS = ROOT / "var" / "bench"
HOST = "127.0.0.1"
DB_NAME = "launchday_bench"
PG_URL = f"postgres://postgres@{HOST}:5432"
REDIS_PORT = 6379
REDIS_DB = 5
# The chaos phase's own redis-server: never the shared one, which other sessions use.
PRIVATE_REDIS_PORT = 6390
LAUNCH = "iphone-3g"
ALLOC_LAUNCH = "bench-allocation"
ORDERS_PATH = "/api/v1/orders/"
BULK_PATH = "/api/v1/orders/bulk"
FLOOR_PATH = "/bench/floor"
SKUS = ("IP3G-8GB-BLACK", "IP3G-16GB-BLACK", "IP3G-16GB-WHITE")
# Every bench customer lives at one postcode, so a client can prove any of them (partners'
# orders carry the customer's postcode) without a table of a million postcodes.
POSTCODE = "SW1A 1AA"
CORES = os.cpu_count() or 1
SETTINGS_MODULE = "bench.settings"

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def stack_env(*, port: int, redis_url: str | None = None) -> dict[str, str]:
    """The environment of every process of the stack, and of this one."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
            "REDIS_URL": redis_url or f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
            "DEBUG": "0",
            "SECURE_SSL_REDIRECT": "0",
            "ALLOWED_HOSTS": HOST,
            "SITE_URL": f"http://{HOST}:{port}",
            # Email is measured by bench/email_bench.py; here the outbox drains to nowhere
            # so the stack's figures are about admission and allocation.
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            "LOG_LEVEL": "WARNING",
            # The partner key's throttle must not cap the single-order measurement; the
            # load shedder (ADMISSION_MAX_QUEUE_MS, ADMISSION_MAX_IN_FLIGHT) stays on.
            "API_THROTTLE_RATE": "1000000/s",
        }
    )
    env.pop("TEST_DB_NAME", None)
    return env


# --- database --------------------------------------------------------------------------------


def database_create() -> None:
    database_recreate(DB_NAME)


def redis_flush() -> None:
    import redis

    redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()


def db() -> psycopg.Connection:
    import psycopg

    return psycopg.connect(f"{PG_URL}/{DB_NAME}", autocommit=True)


def django_setup() -> None:
    import django

    django.setup()


@dataclass(frozen=True)
class Tables:
    """Table names of the models the bench's SQL reads and writes."""

    order: str
    launch: str
    launch_skus: str
    customer: str
    registration: str
    store: str
    partner: str
    location: str
    stock: str
    movement: str
    product: str
    sku: str
    message: str


def tables() -> Tables:
    """Every table name from its model, so the bench's SQL follows the models."""
    from customers.models import Customer, Message, UpgradeRegistration
    from inventory.models import SKU, Launch, Location, Product, Stock, StockMovement
    from orders.models import Order
    from stores.models import Partner, Store

    return Tables(
        order=Order._meta.db_table,
        launch=Launch._meta.db_table,
        launch_skus=Launch.skus.through._meta.db_table,
        customer=Customer._meta.db_table,
        registration=UpgradeRegistration._meta.db_table,
        store=Store._meta.db_table,
        partner=Partner._meta.db_table,
        location=Location._meta.db_table,
        stock=Stock._meta.db_table,
        movement=StockMovement._meta.db_table,
        product=Product._meta.db_table,
        sku=SKU._meta.db_table,
        message=Message._meta.db_table,
    )


@dataclass(frozen=True)
class Seeded:
    key: str
    launch_id: int
    partner_stores: list[str]


def seed(*, customers: int, online_units: int) -> Seeded:
    """seed_demo for the launch, stores and partner key; then customers in bulk by SQL.

    seed_demo builds Python objects per customer; the bench needs hundreds of thousands of
    fresh customers, so all but the first thousand are generated by PostgreSQL itself.
    """
    from django.core.management import call_command

    t = tables()
    out = io.StringIO()
    call_command(
        "seed_demo",
        customers=1000,
        stores=20,
        online_units=online_units,
        store_units=12,
        verbosity=0,
        stdout=out,
    )
    key = next(line.split()[2] for line in out.getvalue().splitlines() if line.startswith("partner "))
    with db() as conn:
        launch_id, sku_ids = conn.execute(
            f"SELECT l.id, array_agg(ls.sku_id ORDER BY ls.sku_id) FROM {t.launch} l "
            f"JOIN {t.launch_skus} ls ON ls.launch_id = l.id WHERE l.slug = %s GROUP BY l.id",
            [LAUNCH],
        ).fetchone()
        customers_postcode_set(conn)
        if customers > 1000:
            conn.execute(
                f"INSERT INTO {t.customer} (account_number, name, email, phone, postcode, current_device, "
                "contract_status, marketing_opt_out, created_at) "
                "SELECT 'D' || lpad(i::text, 7, '0'), 'Bench customer ' || i, "
                "'d' || lpad(i::text, 7, '0') || '@customers.launchday.example', '', %s, "
                "'iPhone (original)', 'upgrade_due', false, now() FROM generate_series(1001, %s) AS i",
                [POSTCODE, customers],
            )
            conn.execute(
                f"INSERT INTO {t.registration} (customer_id, launch_id, preferred_sku_id, "
                "preferred_store_id, registered_at) "
                f"SELECT c.id, %s, (%s::bigint[])[1 + c.id %% 3], NULL, now() FROM {t.customer} c "
                "WHERE c.account_number >= 'D0001001' AND c.account_number LIKE 'D%%'",
                [launch_id, sku_ids],
            )
        conn.execute("ANALYZE")
        stores = [
            r[0]
            for r in conn.execute(
                f"SELECT s.code FROM {t.store} s JOIN {t.partner} p ON p.id = s.partner_id "
                "WHERE p.code = 'cpw' ORDER BY s.code"
            )
        ]
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, customer text NOT NULL, "
            "sku text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    return Seeded(key=key, launch_id=launch_id, partner_stores=stores)


def customers_postcode_set(conn) -> None:
    """seed_demo's D-customers moved to the bench's one POSTCODE."""
    conn.execute(
        f"UPDATE {tables().customer} SET postcode = %s WHERE account_number LIKE 'D%%'",  # noqa: S608
        [POSTCODE],
    )


def eligibility_warm(launch_id: int) -> int:
    from customers.services.registration import eligibility_cache_warm
    from inventory.models import Launch

    return eligibility_cache_warm(launch=Launch.objects.get(pk=launch_id))


def wait_allocator(launch_id: int, timeout: float, *, after: str) -> Drain:
    """Wait until the launch has no queued order left (the allocator has caught up)."""
    order = tables().order
    started = time.monotonic()
    with db() as conn:
        while True:
            queued = conn.execute(
                f"SELECT count(*) FROM {order} WHERE launch_id = %s AND status = 'queued'", [launch_id]
            ).fetchone()[0]
            if queued == 0 or time.monotonic() - started > timeout:
                return Drain(after=after, seconds=time.monotonic() - started, queued_left=queued)
            time.sleep(0.25)


# --- web servers -----------------------------------------------------------------------------

SERVER_KINDS = ("gunicorn", "gthread", "granian", "uvicorn", "custom")


def server_spec(
    kind: str,
    *,
    workers: int,
    backlog: int,
    label: str = "",
    env: tuple[tuple[str, str], ...] = (),
    command: str = "",
) -> ServerSpec:
    """A web server variant. `{host}`, `{port}`, `{workers}` and `{backlog}` in the argv are
    filled in when it starts; `custom` takes its whole command from `command`."""
    gunicorn = [
        str(BIN / "gunicorn"), "config.wsgi", "-c", str(ROOT / "config" / "gunicorn.py"),
        "-w", "{workers}", "-b", "{host}:{port}", "--backlog", "{backlog}", "--log-level", "warning",
    ]  # fmt: skip
    argv: list[str]
    if kind == "gunicorn":
        argv = gunicorn
    elif kind == "gthread":
        # Threads wait for their group commit batch, so a process needs many of them.
        argv = [*gunicorn, "-k", "gthread", "--threads", "32"]
    elif kind == "granian":
        argv = [
            str(BIN / "granian"), "--interface", "asgi", "--host", "{host}", "--port", "{port}",
            "--workers", "{workers}", "--backlog", "{backlog}", "--log-level", "warning", "--no-ws",
            "config.asgi:application",
        ]  # fmt: skip
    elif kind == "uvicorn":
        argv = [
            str(BIN / "python"),
            "-m",
            "config.serve",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--workers",
            "{workers}",
            "--backlog",
            "{backlog}",
        ]  # what make serve runs; fmt: skip
    elif kind == "custom":
        if not command:
            raise ValueError("a custom server needs --server-cmd")
        argv = shlex.split(command)
    else:
        raise ValueError(f"unknown server kind {kind!r} (one of {', '.join(SERVER_KINDS)})")
    return ServerSpec(
        label=label or kind, kind=kind, argv=tuple(argv), env=env, workers=workers, backlog=backlog
    )


def server_available(spec: ServerSpec) -> bool:
    program = spec.argv[0]
    return Path(program).exists() or (not program.startswith("/") and bool(_which(program)))


def _which(program: str) -> str | None:
    import shutil

    return shutil.which(program)


# --- processes -------------------------------------------------------------------------------

_RUNNING: list[Stack | PrivateRedis] = []


def _start_process(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    LOGS.mkdir(parents=True, exist_ok=True)
    out = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Stack:
    """A web server, one Celery worker and beat, each in its own process group."""

    def __init__(self, *, spec: ServerSpec, port: int, redis_url: str | None = None):
        self.spec, self.port = spec, port
        self.env = {**stack_env(port=port, redis_url=redis_url), **dict(spec.env)}
        self.procs: list[tuple[str, subprocess.Popen]] = []
        _RUNNING.append(self)

    def start(self) -> None:
        self.start_web()
        self.start_celery()

    def start_web(self) -> None:
        fill = {"host": HOST, "port": self.port, "workers": self.spec.workers, "backlog": self.spec.backlog}
        argv = [part.format(**fill) for part in self.spec.argv]
        self.procs.append((self.spec.label, _start_process(f"web-{self.spec.label}", argv, self.env)))
        wait_http(self.port)

    def start_celery(self) -> None:
        celery = str(BIN / "celery")
        # The allocator's queue only: emails go out from their own workers (other machines
        # in production) and are not part of admission's figures.
        worker = [celery, "-A", "config", "worker", "-Q", "celery", "-l", "warning", "--concurrency", "2"]
        beat = [
            celery,
            "-A",
            "config",
            "beat",
            "-l",
            "warning",
            "-s",
            str(LOGS / f"beat-schedule-{self.port}"),
        ]
        self.procs.append(("celery-worker", _start_process("celery-worker", worker, self.env)))
        self.procs.append(("celery-beat", _start_process("celery-beat", beat, self.env)))

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs}

    def stop(self) -> None:
        for _, proc in self.procs:
            _stop_process(proc)
        self.procs = []
        with contextlib.suppress(ValueError):
            _RUNNING.remove(self)


class PrivateRedis:
    """A redis-server of the bench's own, on its own port, that it may stop and start.

    The shared Redis on 6379 serves other sessions and is never stopped; the chaos phase
    points its stack here instead. No persistence: an outage loses its contents, which is
    the harder case for the stack (broker queues and cache keys gone).
    """

    def __init__(self, port: int = PRIVATE_REDIS_PORT):
        self.port = port
        self.proc: subprocess.Popen | None = None
        _RUNNING.append(self)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        self.proc = _start_process(f"redis-{self.port}", argv, dict(os.environ))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"private redis-server did not start on {self.port} (see {LOGS})")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, timeout=5)
            self.proc = None

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(ValueError):
            _RUNNING.remove(self)


def stop_all() -> None:
    """Stop every process the bench started that is still running (newest first)."""
    for item in reversed(list(_RUNNING)):
        if isinstance(item, PrivateRedis):
            item.close()
        else:
            item.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_http(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("POST", FLOOR_PATH, body=b'{"customer":"warm","sku":"warm"}')
            if conn.getresponse().status == 202:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the web server did not answer on port {port} within {timeout:.0f}s (see {LOGS})")


def somaxconn() -> int:
    """The kernel's cap on any listen backlog: a server's --backlog above it is cut to it."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 0
