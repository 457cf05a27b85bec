"""Head office's settings of a launch: the fair start (fixed before opening) and stock notices."""

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from inventory.models import Launch

FAIR_START_MAX_SECONDS = 600
# Admission caches a launch for a few seconds in every process, and customers are told
# in advance how the opening works: the setting is fixed well before the doors open.
FAIR_START_FIXED_BEFORE_OPENING = datetime.timedelta(minutes=10)


class LaunchSettingRefused(Exception):
    """A settings change the launch cannot take now, with the sentence to show."""


@transaction.atomic
def launch_fair_start_set(*, launch: Launch, seconds: int, now: datetime.datetime | None = None) -> Launch:
    """Set the launch's fair start (0 switches it off); refused from shortly before opening."""
    if not 0 <= seconds <= FAIR_START_MAX_SECONDS:
        raise LaunchSettingRefused(f"A fair start is 0 (off) to {FAIR_START_MAX_SECONDS} seconds.")
    locked = Launch.objects.select_for_update().get(pk=launch.pk)
    now = now or timezone.now()
    if now >= locked.opens_at - FAIR_START_FIXED_BEFORE_OPENING:
        minutes = int(FAIR_START_FIXED_BEFORE_OPENING.total_seconds() // 60)
        raise LaunchSettingRefused(
            f"The fair start is fixed from {minutes} minutes before the launch opens; it can no longer change."
        )
    locked.fair_start_seconds = seconds
    locked.save(update_fields=["fair_start_seconds"])
    return locked


def launch_notice_settings_set(
    *, launch: Launch, notice_factor: Decimal, claim_window_minutes: int
) -> Launch:
    """How many customers a freed unit tells (factor) and how long it is held for them.

    Applies to windows opened from now on; open windows keep the end their emails gave.
    The launch's CHECK constraints refuse values outside the form's ranges.
    """
    launch.notice_factor = notice_factor
    launch.claim_window_minutes = claim_window_minutes
    launch.save(update_fields=["notice_factor", "claim_window_minutes"])
    return launch
