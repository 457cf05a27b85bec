"""Head office's settings of a launch (the launch row is inventory's, beside the catalogue)."""

from decimal import Decimal

from inventory.models import Launch


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
