"""A launch's opening moved, as a rehearsal does to live its morning on the real stack."""

import datetime

from inventory.models import Launch


def launch_opening_set(
    *, launch: Launch, opens_at: datetime.datetime, fair_start_seconds: int | None = None
) -> Launch:
    """Open the launch at `opens_at` (its window kept at least a day long).

    `fair_start_seconds` is set only where the launch has that setting (the fair start).
    """
    launch.opens_at = opens_at
    launch.closes_at = max(launch.closes_at, opens_at + datetime.timedelta(days=1))
    fields = ["opens_at", "closes_at"]
    if fair_start_seconds is not None and hasattr(launch, "fair_start_seconds"):
        launch.fair_start_seconds = fair_start_seconds
        fields.append("fair_start_seconds")
    launch.save(update_fields=fields)
    return launch
