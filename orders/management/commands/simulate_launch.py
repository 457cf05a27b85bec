"""Rehearse a launch morning against a running stack; write its report as HTML and JSON."""

import argparse
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.models import Launch
from orders.rehearsal.rehearse import Options, rehearse
from orders.services.rehearsals import rehearsal_fail, rehearsal_finish, rehearsal_progress, rehearsal_queue


class Command(BaseCommand):
    help = (
        "Drive a running stack with an open-loop crowd (pre-open trickle, spike at opening, decaying "
        "tail), walk-in queues at each store, and write the report (HTML and JSON)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the stack's base URL")
        parser.add_argument("--launch", default="iphone-3g", help="the launch's slug")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals (default 60)")
        parser.add_argument("--peak-rate", type=float, default=200.0, help="arrivals per second at opening")
        parser.add_argument("--opens-after", type=float, default=None, help="seconds of pre-open trickle")
        parser.add_argument(
            "--show-up", type=float, default=0.6, help="share of registered customers who come"
        )
        parser.add_argument(
            "--jitter",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="retry after Retry-After stretched at random (--no-jitter: exactly Retry-After)",
        )
        parser.add_argument(
            "--fair-start", type=int, default=None, help="the launch's fair start, in seconds"
        )
        parser.add_argument("--no-walk-ins", action="store_true", help="leave the stores' doors shut")
        parser.add_argument("--partner", default=None, help="partner code whose keys send the orders")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--capacity",
            type=float,
            default=None,
            help="admissions/s measured before (the report states the spike as x it)",
        )
        parser.add_argument("--out", default=None, help="file stem: writes STEM.html and STEM.json")

    def handle(self, *args, **opts) -> None:
        launch = Launch.objects.filter(slug=opts["launch"]).first()
        if launch is None:
            raise CommandError(f"No launch {opts['launch']!r}.")
        if opts["peak_rate"] <= 0 or opts["duration"] <= 0:
            raise CommandError("--peak-rate and --duration must be above 0.")
        options = Options(
            url=opts["url"],
            launch=launch.slug,
            duration=opts["duration"],
            peak_rate=opts["peak_rate"],
            opens_after=opts["opens_after"],
            show_up=opts["show_up"],
            jitter=opts["jitter"],
            fair_start=opts["fair_start"],
            walk_ins=not opts["no_walk_ins"],
            partner=opts["partner"],
            seed=opts["seed"],
            capacity=opts["capacity"],
        )
        rehearsal = rehearsal_queue(launch=launch, options=options.as_dict())

        def progress(tally: dict) -> None:
            rehearsal_progress(rehearsal_id=rehearsal.pk, progress=tally)
            if opts["verbosity"] > 1:
                self.stdout.write(json.dumps(tally))

        try:
            summary, page = rehearse(options, progress=progress)
        except Exception as exc:
            rehearsal_fail(rehearsal_id=rehearsal.pk, error=repr(exc))
            raise
        rehearsal_finish(rehearsal_id=rehearsal.pk, summary=summary, report_html=page)
        if opts["out"]:
            stem = Path(opts["out"])
            stem.parent.mkdir(parents=True, exist_ok=True)
            stem.with_suffix(".html").write_text(page)
            stem.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
        inv = summary["invariants"]
        self.stdout.write(
            f"rehearsal {rehearsal.pk}: {summary['people']} people, {inv['acknowledged']} acknowledged, "
            f"{inv['orders_in_database']} in the database; oversold {inv['oversold']}, lost {inv['lost']}, "
            f"duplicated {inv['duplicated']}, FCFS violations {inv['fcfs_violations']}; "
            f"admitted peak {summary['admitted_peak_per_second']}/s, capacity (while refusing) {summary['capacity']}/s, "
            f"spike {summary['spike']}; "
            f"time to verdict p50 {summary['time_to_verdict']['p50']} s, p99 {summary['time_to_verdict']['p99']} s"
        )
