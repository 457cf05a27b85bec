"""The report renders typed results, and says which server ran and what failed."""

import json

from bench.figures import (
    BenchRun,
    Invariants,
    LoadPhase,
    OfficeFigures,
    OfficeRequestFigures,
    OfficeSelectorFigures,
    OpenLoopStep,
    ServerSpec,
    SideBySide,
    WrkRun,
)
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


def _office_request(name: str, **kw) -> OfficeRequestFigures:
    base = dict(
        name=name, path="/office/launches/office-bench/", kind="page", requests=200, per_s=25.0,
        statuses={"200": 200}, p50_ms=12.0, p99_ms=40.0, max_ms=55.0, bytes_max=4_000, page_bytes_max=19_000,
        target_ms=100.0,
    )  # fmt: skip
    base.update(kw)
    return OfficeRequestFigures(**base)


def _office_run() -> BenchRun:
    run = _run()
    run.office = OfficeFigures(
        launch="office-bench", customers=400_000, registrations=400_000, orders=320_000,
        orders_by_status={"allocated": 150_600, "waitlisted": 169_400}, seed_seconds=70.0, browsers=10,
        connections=2, poll_seconds=15.0, page_seconds=8.0,
        requests=[
            _office_request("overview live panel (polled, 10 browsers)", kind="poll", per_s=2.0, p99_ms=12.5,
                            bytes_max=980, target_ms=20.0, target_bytes=10_240),
            _office_request("System panel (polled, 10 browsers)", kind="poll", per_s=5.0, p99_ms=8.0,
                            bytes_max=12_000, target_ms=20.0, target_bytes=10_240),
            _office_request("overview page"),
            _office_request("plan page", statuses={"200": 199, "500": 1}),
            _office_request("fairness audit page", p99_ms=900.0, note="an audit, read after the morning"),
        ],
        in_process=[OfficeSelectorFigures(name="fairness audit (selector)", calls=5, p50_ms=700.0, p99_ms=800.0,
                                          max_ms=800.0)],
        fairness_plan="GroupAggregate (actual time=700..800 rows=63 loops=1); Execution Time: 801.0 ms",
    )  # fmt: skip
    return run


def test_office_section_gives_every_request_its_target_and_verdict():
    text = report(_office_run())
    assert "## Head office's pages (issue 11), over HTTP" in text
    assert (
        "400,000 customers, 400,000 registrations, 320,000 orders (allocated 150,600, waitlisted 169,400)"
        in text
    )
    rows = {line.split(" `")[0].strip("| "): line for line in text.splitlines() if " `/office/" in line}
    assert rows["overview live panel (polled, 10 browsers)"].endswith(
        "| p99 <= 20 ms; <= 10 KB; all 200 | met |"
    )
    assert "2 polls/s on schedule" in rows["overview live panel (polled, 10 browsers)"]
    # Over 10 KB on the wire misses, however fast; so does one answer that is not a 200.
    assert rows["System panel (polled, 10 browsers)"].endswith("| MISSED |")
    assert rows["overview page"].endswith("| p99 <= 100 ms; all 200 | met |")
    assert "199 of 200 answered 200 (200: 199, 500: 1)" in rows["plan page"]
    assert rows["plan page"].endswith("| MISSED |")
    assert rows["fairness audit page"].endswith("(an audit, read after the morning) | MISSED |")
    assert "Execution Time: 801.0 ms" in text
    assert "| fairness audit (selector), in the bench's process | p50 700.0 ms" in text


def test_office_figures_reach_the_json(tmp_path):
    path = write_results(_office_run(), tmp_path)
    data = json.loads(path.with_suffix(".json").read_text())
    assert data["office"]["orders"] == 320_000
    assert [r["name"] for r in data["office"]["requests"]][:2] == [
        "overview live panel (polled, 10 browsers)",
        "System panel (polled, 10 browsers)",
    ]
    assert data["office"]["requests"][3]["statuses"] == {"200": 199, "500": 1}


def test_office_request_meets_its_target_only_with_every_answer_a_200():
    assert _office_request("page").met
    assert not _office_request("page", p99_ms=100.1).met
    assert not _office_request("page", statuses={"200": 199, "302": 1}).met
    assert not _office_request("page", requests=0, statuses={}).met
    assert not _office_request("poll", target_bytes=10_240, bytes_max=10_241).met
