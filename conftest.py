"""Fixtures shared by every app's tests: service checks, a real Celery worker, a browser."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or "" when Chromium is where settings say."""
    path = settings.CHROMIUM_PATH
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return ""
    return (
        f"needs Chromium at {path} (LAUNCHDAY_CHROMIUM): install it with "
        "`apt-get install chromium chromium-driver`, or run `bash .ci/run`, which does"
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked `services` need PostgreSQL and Redis, tests marked `browser` need Chromium:
    skip them only when those are absent and REQUIRE_SERVICES is not set.

    With REQUIRE_SERVICES=1 the settings refuse to load without PostgreSQL and Redis, and
    a missing Chromium fails every browser test (browser_type_launch_args) instead of skipping.
    """
    have_services = settings.USING_POSTGRES and bool(settings.REDIS_URL)
    no_chromium = "" if settings.REQUIRE_SERVICES else chromium_missing()
    skip_services = pytest.mark.skip(reason="needs PostgreSQL and Redis (set REQUIRE_SERVICES=1 to insist)")
    skip_browser = pytest.mark.skip(reason=no_chromium + " (set REQUIRE_SERVICES=1 to insist)")
    for item in items:
        if not have_services and "services" in item.keywords:
            item.add_marker(skip_services)
        elif no_chromium and "browser" in item.keywords:
            item.add_marker(skip_browser)


@pytest.fixture(autouse=True)
def _fresh_in_process_caches():
    """Each test has its own database rows: forget what the process cached from the last.

    The local-memory cache (no Redis) is this process's own, so it is emptied too: SQLite
    hands out the same ids again after a rollback, and a cached id would name the wrong row.
    """
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from customers.services.registration import eligibility_local_clear

    def forget():
        eligibility_local_clear()
        if isinstance(caches["default"], LocMemCache):
            caches["default"].clear()

    forget()
    yield
    forget()


@pytest.fixture
def launch_with_sku(db):
    """An open launch of one SKU, for tests that make their own customers and orders."""
    from inventory.tests.factories import LaunchFactory, SKUFactory

    sku = SKUFactory()
    launch = LaunchFactory(skus=[sku])
    return launch, sku


class ChildProcess:
    """A process of the stack (a Celery worker, the web server) on the test database, in a
    session of its own so a test can stop or kill it whole; its output goes to a log file."""

    kind = "process"
    start_seconds = 30.0

    def __init__(self, *, extra_env: dict[str, str] | None = None):
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None
        self.log_path = BASE_DIR / "var" / f"{self.kind}-{os.getpid()}-{time.monotonic_ns()}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self):
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
                # Tasks go to the run's queue (a worker of the test reads it, or nobody does).
                "CELERY_WORKER_EAGER": "0",
                "ALLOWED_HOSTS": "127.0.0.1",
            }
        )
        env.update(self.extra_env)
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            self.argv(), cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if self.ready():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and its children), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class CeleryWorker(ChildProcess):
    """A real `celery worker` process on the test database and the Redis broker."""

    kind = "worker"

    def __init__(self, *, concurrency: int = 1, extra_env: dict[str, str] | None = None):
        super().__init__(extra_env=extra_env)
        self.concurrency = concurrency

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
            "--concurrency", str(self.concurrency), "--pool", "prefork",
            "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info",
        ]  # fmt: skip

    def ready(self) -> bool:
        return b"ready." in self.log_path.read_bytes()


@pytest.fixture
def celery_worker_factory(settings):
    """Start real Celery workers; tasks sent in the test go to them instead of running eagerly.

    Use with @pytest.mark.django_db(transaction=True) so the worker sees committed rows.
    """
    from config.celery import app

    if not settings.USING_POSTGRES:
        pytest.skip("a real worker needs PostgreSQL")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    workers: list[CeleryWorker] = []

    def start(**kwargs) -> CeleryWorker:
        worker = CeleryWorker(**kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    app.conf.task_always_eager = True
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


class LiveFront(ChildProcess):
    """uvicorn serving config.asgi (the admission front) on the test database, as make serve
    runs it, on a free port of 127.0.0.1; its workers are real processes a test may kill.
    Nudges go to the run's queue, which no worker reads: these tests are about admission."""

    kind = "front"
    start_seconds = 60.0

    def __init__(self, *, workers: int = 2, extra_env: dict[str, str] | None = None):
        super().__init__(extra_env=extra_env)
        self.workers = workers
        self.port = 0

    def start(self) -> "LiveFront":
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        return super().start()

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "config.serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]  # what make serve runs; fmt: skip

    def ready(self) -> bool:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/api/v1/launches/")
            return conn.getresponse().status == 401
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The worker processes: the supervisor's spawned children (not its resource tracker)."""
        assert self.process is not None
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


@pytest.fixture
def live_front_factory():
    """Start the real ASGI stack (uvicorn, the front, Django); stopped after the test.

    Use with @pytest.mark.django_db(transaction=True) so its processes see committed rows.
    """
    if not settings.USING_POSTGRES:
        pytest.skip("the live front needs PostgreSQL")
    fronts: list[LiveFront] = []

    def start(**kwargs) -> LiveFront:
        front = LiveFront(**kwargs).start()
        fronts.append(front)
        return front

    yield start
    for front in fronts:
        front.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """Playwright drives Debian's Chromium; it never downloads a browser of its own.

    Every browser test reaches this first (it is what starts the browser), so this is where
    REQUIRE_SERVICES=1 turns a missing Chromium into a failure rather than a skip.
    """
    missing = chromium_missing()
    if missing:
        pytest.fail(f"REQUIRE_SERVICES=1, and the browser tests {missing}.", pytrace=False)
    return {
        "executable_path": settings.CHROMIUM_PATH,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }
