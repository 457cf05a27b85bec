"""A fair start under stalls, on real PostgreSQL: an admission that began inside the
opening draw but is slow is either in the draw and served in draw order (the allocator
waited for it), or outside the draw and served first come first served after it; never
in the draw but served after orders that came after the draw.

The stalls outlast the 2 s grace the allocator used to wait after the draw closed, on
every path that writes a draw: one order, group commit, and a bulk (a multi-row insert).
"""

import datetime
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from inventory.models import Launch
from orders.models import Order
from orders.selectors.fairness import launch_fairness
from orders.services import admission, bulk
from orders.services import group_commit as gc
from orders.services.admission import OrderRequest, order_admit
from orders.services.allocation import launch_allocate
from orders.services.catalogue import catalogue_clear

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SKU = "IP3G-8GB-BLACK"
FAIR_START_SECONDS = 2
# Longer than the grace the allocator used to give a draw after it closed (2 s).
PAST_THE_OLD_GRACE = datetime.timedelta(seconds=2.5)
PATHS = ("single", "group_commit", "bulk")


def admit(path: str, accounts: list[str]) -> None:
    """Admit the accounts' orders the way `path` does (a bulk: all in one request)."""
    if path == "bulk":
        outcomes = bulk.orders_admit_bulk(
            requests=[
                OrderRequest(launch="iphone-3g", customer=a, sku=SKU, fulfilment="delivery") for a in accounts
            ],
            channel=Order.Channel.PARTNER,
            partner_id=None,
        )
        assert all(o.order is not None for o in outcomes), outcomes
        return
    admit_one = order_admit if path == "single" else gc.order_admit_grouped
    for account in accounts:
        admit_one(launch="iphone-3g", customer=account, sku=SKU, fulfilment="delivery", channel="online")


def stalled(path: str) -> list[str]:
    # A bulk of two is written by the multi-row INSERT; one alone would go row by row.
    return ["D0000002", "D0000003"] if path == "bulk" else ["D0000002"]


def draw_opening(launch) -> datetime.datetime:
    """Open the launch now with a fair start; return when its draw closes."""
    opens_at = timezone.now() - datetime.timedelta(seconds=0.2)
    Launch.objects.filter(pk=launch.pk).update(opens_at=opens_at, fair_start_seconds=FAIR_START_SECONDS)
    catalogue_clear()
    return opens_at + datetime.timedelta(seconds=FAIR_START_SECONDS)


def sleep_until(moment: datetime.datetime) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()))


def in_thread(work) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def assert_the_draw_was_served_first(launch) -> None:
    """Every order of the draw was served before any order outside it: none of the draw
    still waits while an order from after it holds a unit, and the audit agrees."""
    orders = list(Order.objects.filter(launch=launch))
    drawn = [o for o in orders if o.fair_draw is not None]
    after = [o for o in orders if o.fair_draw is None]
    served_after = [o for o in after if o.status == Order.Status.ALLOCATED]
    if served_after:
        waiting = [o.customer.account_number for o in drawn if o.status != Order.Status.ALLOCATED]
        assert waiting == [], f"drawn orders {waiting} wait while orders from after the draw were served"
        assert max(o.allocated_at for o in drawn) <= min(o.allocated_at for o in served_after)
    assert launch_fairness(launch=launch).violations == 0


@pytest.mark.parametrize("path", PATHS)
def test_an_admission_stalled_before_its_insert_past_the_close_is_not_served_out_of_turn(
    path, launch_with_stock, monkeypatch
):
    """D0000001 is in the draw; the stalled order(s) passed the window check inside the
    draw and then stall before their insert until the draw closed 2.5 s ago; meanwhile
    D0000009 arrives after the draw and the allocator runs (two units). Decided by the
    clock before the admission lock, the stalled orders would carry a draw the allocator
    had already served past, and wait behind D0000009's unit."""
    launch, *_ = launch_with_stock(online_units=2, customers=9)
    began_inside: list[bool] = []
    entered, release = threading.Event(), threading.Event()
    slow = set(stalled(path))

    def stall_for(accounts: set[str]) -> None:
        if accounts & slow:
            began_inside.append(timezone.now() < closes)
            entered.set()
            assert release.wait(30)

    # The stall sits where each path has checked the window but not yet written the row.
    if path == "bulk":
        real_eligible = bulk.candidates_eligible

        def eligible_then_stall(candidates, **kwargs):
            found = real_eligible(candidates, **kwargs)
            stall_for({c.request.customer for c in candidates})
            return found

        monkeypatch.setattr(bulk, "candidates_eligible", eligible_then_stall)
    else:
        module = admission if path == "single" else gc
        real_one = module.eligible_or_refused

        def eligible_then_stall_one(*, customer, **kwargs):
            found = real_one(customer=customer, **kwargs)
            stall_for({customer})
            return found

        monkeypatch.setattr(module, "eligible_or_refused", eligible_then_stall_one)

    closes = draw_opening(launch)
    admit(path, ["D0000001"])
    thread, errors = in_thread(lambda: admit(path, sorted(slow)))
    assert entered.wait(10)
    assert began_inside == [True]  # the stalled admission began inside the draw

    sleep_until(closes + PAST_THE_OLD_GRACE)
    admit(path, ["D0000009"])  # after the draw; its commit runs the allocator (eager Celery)
    launch_allocate(launch_id=launch.pk)
    release.set()
    thread.join(30)
    assert errors == []
    launch_allocate(launch_id=launch.pk)

    assert Order.objects.get(customer__account_number="D0000001").fair_draw is not None
    assert Order.objects.get(customer__account_number="D0000009").fair_draw is None
    assert_the_draw_was_served_first(launch)


@pytest.mark.parametrize("path", PATHS)
def test_an_admission_written_inside_the_draw_and_committed_late_is_waited_for(path, launch_with_stock):
    """The stalled order(s) are written inside the draw, in a transaction that stays open
    until well after the draw closed: the allocator that saw the close waits for their
    commit at its watermark, and serves them in the draw, ahead of D0000009 (two units)."""
    launch, *_ = launch_with_stock(online_units=2, customers=9)
    slow = stalled(path)
    written, release = threading.Event(), threading.Event()

    def admit_and_hold() -> None:
        with transaction.atomic():
            admit(path, slow)
            written.set()
            assert release.wait(30)

    closes = draw_opening(launch)
    admit(path, ["D0000001"])
    thread, errors = in_thread(admit_and_hold)
    assert written.wait(10)
    assert timezone.now() < closes  # written inside the draw

    sleep_until(closes + PAST_THE_OLD_GRACE)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    # D0000009's commit runs the allocator (eager Celery): it must wait for the open
    # transaction at its watermark, which ends with the timer.
    admit(path, ["D0000009"])
    assert time.monotonic() - started >= 0.9
    thread.join(30)
    assert errors == []
    launch_allocate(launch_id=launch.pk)

    late = Order.objects.get(customer__account_number="D0000009")
    assert late.fair_draw is None
    assert all(o.fair_draw is not None for o in Order.objects.filter(customer__account_number__in=slow))
    assert_the_draw_was_served_first(launch)
    assert late.status == Order.Status.WAITLISTED
