"""The report renders typed results, and says which server ran and what failed."""

import json

from bench.figures import BenchRun, Invariants, LoadPhase, OpenLoopStep, ServerSpec, SideBySide, WrkRun
from bench.report import report, write_results


def _wrk(per_s: float, path: str) -> WrkRun:
    return WrkRun(
        path=path, connections=8, seconds=10.0, requests=int(per_s * 10), statuses={"202": int(per_s * 10)},
        retry_after=0, overflow=0, errors={}, p50_ms=5.0, p90_ms=8.0, p99_ms=12.0, max_ms=20.0, mean_ms=6.0,
    )  # fmt: skip


def _phase(name: str, **kw) -> LoadPhase:
    base = dict(
        name=name, mode="closed", server="gunicorn", seconds=10.0, connections=32, sent=9000,
        answers={"202": 8000, "503": 1000}, admitted=8000, refused=1000, refused_with_retry_after=1000,
        admitted_p50_ms=9.0, admitted_p99_ms=30.0, refused_p50_ms=1.0, refused_p99_ms=4.0, errors={},
        timeouts=0, client_cpu_seconds=2.0, client_processes=2,
    )  # fmt: skip
    base.update(kw)
    return LoadPhase(**base)


def _run() -> BenchRun:
    spec = ServerSpec(
        label="new", kind="gunicorn", argv=("gunicorn", "config.wsgi"), env=(("ADMISSION_PATH", "new"),)
    )
    run = BenchRun(
        started="2026-01-01T00:00:00", cores=2, platform="Linux", python="3.11", workers=4, connections=8,
        duration=20.0, step_duration=15.0, quick=False, load_start=0.5, somaxconn=4096, nofile_limit=20000,
    )  # fmt: skip
    run.side_by_side.append(
        SideBySide(server=spec, floor=_wrk(1500, "/bench/floor"), single=_wrk(900, "/api/v1/orders/"))
    )
    run.sweep.append(_phase("sweep 32 connections"))
    run.capacity_per_s = 800.0
    run.open_loop.append(
        OpenLoopStep(
            multiple=10, capacity_per_s=800.0, load=_phase("open loop 10x", mode="open", asked_per_s=8000.0)
        )
    )
    run.invariants.append(
        Invariants(
            after="sweep 32 connections",
            oversold_units=0,
            acknowledged_missing=0,
            duplicate_orders=1,
            fcfs_violations=0,
            ledger_drift_rows=0,
            reserved_vs_allocated_mismatch=0,
            acknowledged=8000,
            acknowledged_twice=0,
            orders_by_status={"queued": 3},
        )  # fmt: skip
    )
    run.failures.append("slow: RuntimeError: boom")
    return run


def test_report_says_which_server_ran_with_which_settings():
    text = report(_run())
    assert "new: `gunicorn config.wsgi` with ADMISSION_PATH=new" in text
    assert "| [new] (1) / floor | 0.60 | >= 0.6 | met |" in text


def test_report_shows_asked_vs_achieved_and_client_cpu():
    text = report(_run())
    # 9,000 sent in 10 s against 8,000/s asked: the client fell short, and the table says so.
    assert "| 10x | 8,000 / 900 (11%) |" in text
    assert "2.0 s (20% of a core, 2 proc)" in text


def test_broken_invariant_and_failed_phase_are_visible():
    text = report(_run())
    assert "| sweep 32 connections | 0 | 0 | 1 | 0 | 0 / 0 | 8,000 | queued 3 | MISSED |" in text
    assert "slow: RuntimeError: boom" in text


def test_json_has_the_figures_and_the_derived_rates(tmp_path):
    path = write_results(_run(), tmp_path)
    data = json.loads(path.with_suffix(".json").read_text())
    assert data["sweep"][0]["admitted"] == 8000
    assert data["derived"]["load_phases"]["sweep 32 connections"]["admitted_per_s"] == 800.0
    assert data["side_by_side"][0]["server"]["env"] == [["ADMISSION_PATH", "new"]]
