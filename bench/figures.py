"""Typed results of `make bench`: what each phase measured, and nothing else.

Load generators (bench/load.py) and in-process phases return these; bench/report.py turns
them into the markdown table and JSON. No module passes an untyped dict to another: a
figure that has no field here is not reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# A refusal counts as fast when the client has it within this time, queueing included.
REFUSAL_FAST_MS = 1000.0

TARGETS = {
    "single_vs_floor": 0.6,
    "bulk_orders_per_s": 13_000,
    "allocation_orders_per_s": 50_000,
    "overload_admitted_ratio": 0.9,
}


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def per_second(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class ServerSpec:
    """One way of running the web tier: which server, its command, and server-side settings.

    `env` holds only the settings this variant changes (e.g. ADMISSION_MAX_QUEUE_MS, or a
    switch between admission paths), so the report can say exactly what differed.
    """

    label: str
    kind: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    workers: int = 0
    backlog: int = 0

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.env)
        return f"{self.label}: `{' '.join(self.argv)}`" + (f" with {settings}" if settings else "")


@dataclass
class WrkRun:
    """One wrk run (closed loop: each connection sends its next request on an answer)."""

    path: str
    connections: int
    seconds: float
    requests: int
    statuses: dict[str, int]
    retry_after: int
    overflow: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def admitted(self) -> int:
        return self.statuses.get("202", 0)

    @property
    def admitted_per_s(self) -> float:
        return per_second(self.admitted, self.seconds)


@dataclass
class SideBySide:
    """The floor and single-order admission under one server variant, in the same run."""

    server: ServerSpec
    floor: WrkRun
    single: WrkRun | None = None

    @property
    def ratio(self) -> float | None:
        if self.single is None:
            return None
        return per_second(self.single.admitted_per_s, self.floor.admitted_per_s)


@dataclass
class LoadPhase:
    """One step of single-order load, closed or open loop, as the client saw it.

    Latencies of an open loop are measured from each request's *scheduled* time, so a
    client that fell behind shows it (lag) instead of hiding it (coordinated omission).
    """

    name: str
    mode: str  # "closed" (a fixed number of connections) or "open" (a fixed arrival rate)
    server: str
    seconds: float
    connections: int  # closed: the connections; open: the most open at once
    sent: int
    answers: dict[str, int]
    admitted: int
    refused: int
    refused_with_retry_after: int
    admitted_p50_ms: float
    admitted_p99_ms: float
    refused_p50_ms: float
    refused_p99_ms: float
    errors: dict[str, int]
    timeouts: int
    client_cpu_seconds: float
    client_processes: int
    asked_per_s: float = 0.0  # open loop: the arrival rate asked for
    lag_p99_ms: float = 0.0  # open loop: how late requests left against their schedule
    lag_max_ms: float = 0.0
    unsent: int = 0  # open loop: scheduled but never sent before the phase's end
    out_of_customers: bool = False

    @property
    def admitted_per_s(self) -> float:
        return per_second(self.admitted, self.seconds)

    @property
    def offered_per_s(self) -> float:
        return per_second(self.sent, self.seconds)

    @property
    def answered(self) -> int:
        return sum(self.answers.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def client_cpu_share(self) -> float:
        """The client's CPU as a share of the machine's cores over the phase."""
        return per_second(self.client_cpu_seconds, self.seconds)

    @property
    def server_errors(self) -> int:
        """5xx answers other than 503 (a 503 is a polite refusal)."""
        return sum(n for s, n in self.answers.items() if s.startswith("5") and s != "503")


@dataclass
class OverloadLegacy:
    """The original 3x overload phase (one asyncio client, a new connection per request)."""

    load: LoadPhase
    baseline_per_s: float

    @property
    def admitted_ratio(self) -> float:
        return per_second(self.load.admitted_per_s, self.baseline_per_s)


@dataclass
class OpenLoopStep:
    multiple: float
    capacity_per_s: float
    load: LoadPhase

    @property
    def admitted_ratio(self) -> float:
        return per_second(self.load.admitted_per_s, self.capacity_per_s)


@dataclass
class BulkPhase:
    clients: int
    orders_per_request: int
    seconds: float
    requests: int
    admitted: int
    request_p50_ms: float
    request_p99_ms: float
    items_other: dict[str, int]
    http_other: dict[str, int]

    @property
    def orders_per_s(self) -> float:
        return per_second(self.admitted, self.seconds)


@dataclass
class RetryPhase:
    """Clients that honour Retry-After and retry with the same Idempotency-Key."""

    name: str
    server: str
    clients: int
    orders: int
    attempts: int
    answers: dict[str, int]  # every answer, first tries and retries
    admitted: int  # orders whose final answer was a 202
    final_other: dict[str, int]  # orders whose final answer was something else
    unfinished: int  # orders still without a final answer at the deadline
    refusals: int
    errors: dict[str, int]
    timeouts: int
    seconds_to_admit_all: float | None  # None when not every order was admitted
    seconds: float
    distinct_references: int

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.answers.items() if s.startswith("5") and s != "503")


@dataclass
class SlowBodyPhase:
    """Admission load while connections hold their request bodies back."""

    slow_connections: int
    slow_opened: int
    slow_closed_by_server: int
    baseline: LoadPhase | None
    load: LoadPhase


@dataclass
class ChaosPhase:
    """Retrying clients while the stack's private Redis is stopped and restarted."""

    outage_seconds: float
    redis_port: int
    retry: RetryPhase
    customers_without_order: int
    customers_with_two_or_more: int


@dataclass
class DatabaseCrashFigures:
    """bench/chaos_pg.py: a private PostgreSQL stopped (immediate) under retrying clients."""

    outage_seconds: float
    retry: RetryPhase
    customers_without_order: int
    customers_with_two_or_more: int
    emails_received: int
    emails_unique: int
    sending_processes: int
    messages_left_unsent: int
    orders_left_queued: int
    acknowledged: int

    @property
    def emails_repeated(self) -> int:
        return self.emails_received - self.emails_unique


@dataclass
class StorePollFigures:
    """One kind of poll of the store page, sent on its schedule (an open loop)."""

    name: str
    per_s: float
    polls: int
    ok: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes_max: int  # on the wire (the bench asks for gzip, as browsers do)
    bytes_mean: float
    page_bytes_max: int = 0  # the HTML once uncompressed


@dataclass
class StorePanelFigures:
    """bench/store_panel.py: a store's live panel with a launch morning's backlog."""

    store: str
    waiting: int  # collect orders waiting for a unit there
    ready: int  # collect orders holding a unit there
    browsers: int
    panel: StorePollFigures
    ready_list: StorePollFigures
    most_polls_per_s: float  # eight connections polling back to back
    closed_answers: int
    web_cpu_ms_per_poll: float

    @property
    def cores_for_browsers(self) -> float:
        """Web CPU the browsers' panel polls take, in cores."""
        return self.panel.per_s * self.web_cpu_ms_per_poll / 1000


@dataclass
class OfficeRequestFigures:
    """One head-office request measured over HTTP, open loop (latency from each request's
    schedule): a polled fragment or a page load; for a page also the most loads a second a
    few connections back to back get."""

    name: str
    path: str
    kind: str  # "poll" or "page"
    requests: int
    per_s: float
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes_max: int  # on the wire (gzip asked for, as browsers do)
    page_bytes_max: int  # uncompressed
    target_ms: float
    target_bytes: int = 0  # 0: no size target
    note: str = ""
    most_per_s: float = 0.0  # pages: back to back on OfficeFigures.connections connections
    from_memory: int = 0  # answered from a panel's shared answer (config.polls), not by Django
    age_max_s: int = 0  # the oldest such answer's Age
    # Polls split by who answered: from memory, and by Django (the process held no pass or
    # answer for that session yet, as a session's first poll there): the p99 is often these few.
    memory_p99_ms: float = 0.0
    django_p50_ms: float = 0.0
    django_max_ms: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def met(self) -> bool:
        return (
            self.requests > 0
            and self.ok == self.requests
            and self.p99_ms <= self.target_ms
            and (not self.target_bytes or self.bytes_max <= self.target_bytes)
        )


@dataclass
class OfficeSelectorFigures:
    """A selector, or a page through Django's test client, timed in the bench's own process
    (no HTTP, no server)."""

    name: str
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class OfficeFigures:
    """bench/office.py: head office's pages over HTTP on a launch at launch scale."""

    launch: str
    customers: int
    registrations: int
    orders: int
    orders_by_status: dict[str, int]
    seed_seconds: float
    browsers: int
    connections: int
    poll_seconds: float
    page_seconds: float
    requests: list[OfficeRequestFigures] = field(default_factory=list)
    in_process: list[OfficeSelectorFigures] = field(default_factory=list)
    fairness_plan: str = ""  # the audit's first statement: top plan node; execution time


@dataclass
class AllocationRun:
    queue: int
    allocated: int
    waitlisted: int
    batches: int
    seconds: float

    @property
    def orders_per_s(self) -> float:
        return per_second(self.allocated + self.waitlisted, self.seconds)


@dataclass
class Drain:
    after: str
    seconds: float
    queued_left: int


@dataclass
class Invariants:
    after: str
    oversold_units: int
    acknowledged_missing: int
    duplicate_orders: int
    fcfs_violations: int
    ledger_drift_rows: int
    reserved_vs_allocated_mismatch: int
    acknowledged: int
    acknowledged_twice: int
    orders_by_status: dict[str, int]

    @property
    def held(self) -> bool:
        return not (
            self.oversold_units
            or self.acknowledged_missing
            or self.duplicate_orders
            or self.fcfs_violations
            or self.ledger_drift_rows
            or self.reserved_vs_allocated_mismatch
        )


@dataclass
class EmailFigures:
    messages: int
    message_bytes: int
    campaign_enqueue_per_s: int
    worker_processes: int
    worker_emails_per_s: int
    bare_smtplib_emails_per_s: int
    ratio: float
    target_ratio: float
    sink_received: int
    sink_unique_message_ids: int
    duplicates_from_worker: int


@dataclass
class WebhookFigures:
    events: int
    body_bytes: int
    enqueue_per_s: int
    worker_processes: int
    worker_deliveries_per_s: int
    bare_httpx_posts_per_s: int
    bare_http_client_posts_per_s: int
    ratio: float
    ratio_to_http_client: float
    target_ratio: float
    admissions_per_s_meanwhile: int
    probes: int
    probes_delivered: int
    latency_p50_ms: float
    latency_p99_ms: float


@dataclass
class IntakeFigures:
    units: int
    stores: int
    orders_waiting: int
    setup_seconds: float
    intake_seconds: float
    steps_seconds: dict[str, float]
    store_receipts_seconds: float
    store_confirmations_seconds: float
    store_allocation_seconds: float
    end_to_end_seconds: float
    reconcile_seconds: float
    allocated_by_intake: int
    allocated_at_stores: int
    stores_receiving: int
    drift: int


@dataclass
class NoticeFigures:
    """bench/notice_bench.py: stock notices for 100,000 freed units, and the claim path."""

    units_freed: int
    customers_registered: int
    setup_seconds: float
    notified: int
    held: int
    notices_seconds: float
    claims: int
    claim_ms_per_order: float
    admitted: int
    admission_ms_per_order: float
    admission_allocated_ms_per_order: float
    allocated_after_admission: int
    problems: list[str]


@dataclass
class BenchRun:
    """Everything one `make bench` run measured, in the order it ran."""

    started: str
    cores: int
    platform: str
    python: str
    workers: int
    connections: int
    duration: float
    step_duration: float
    quick: bool
    load_start: float
    somaxconn: int
    nofile_limit: int
    load_end: float = 0.0
    total_seconds: float = 0.0
    side_by_side: list[SideBySide] = field(default_factory=list)
    kept_server: str = ""
    overload: OverloadLegacy | None = None
    bulk: BulkPhase | None = None
    sweep: list[LoadPhase] = field(default_factory=list)
    capacity_per_s: float = 0.0
    open_loop: list[OpenLoopStep] = field(default_factory=list)
    retrying: RetryPhase | None = None
    slow_bodies: SlowBodyPhase | None = None
    chaos: ChaosPhase | None = None
    database_crash: DatabaseCrashFigures | None = None
    store_panel: StorePanelFigures | None = None
    office: OfficeFigures | None = None
    allocation: AllocationRun | None = None
    drains: list[Drain] = field(default_factory=list)
    invariants: list[Invariants] = field(default_factory=list)
    email: EmailFigures | None = None
    intake: IntakeFigures | None = None
    notices: NoticeFigures | None = None
    webhooks: WebhookFigures | None = None
    failures: list[str] = field(default_factory=list)  # phases that raised, and why
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Plain data for the JSON file, with each derived rate spelled out beside its counts."""
        data = dataclasses.asdict(self)
        data["derived"] = {
            "side_by_side": [
                {"server": s.server.label, "floor_per_s": s.floor.admitted_per_s, "ratio": s.ratio}
                for s in self.side_by_side
            ],
            "load_phases": {
                p.name: {
                    "admitted_per_s": p.admitted_per_s,
                    "offered_per_s": p.offered_per_s,
                    "client_cpu_share": p.client_cpu_share,
                }
                for p in self.load_phases()
            },
        }
        return data

    def load_phases(self) -> list[LoadPhase]:
        phases = [*self.sweep, *(s.load for s in self.open_loop)]
        if self.overload:
            phases.append(self.overload.load)
        if self.slow_bodies:
            phases.append(self.slow_bodies.load)
        return phases
