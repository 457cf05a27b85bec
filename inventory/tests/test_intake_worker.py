"""Intake on a real Celery worker and Redis broker: a manifest dropped in the inbox is
received once, the same file again changes nothing, and a worker killed half way through
intake and restarted finishes it exactly once."""

import time

import pytest
from django.utils import timezone

from inventory.models import AllocationPlan, Delivery, StockMovement
from inventory.services import stock_reconcile
from inventory.tasks import intake_due_deliveries
from inventory.tests.world import add_orders, make_launch, make_stores, waitlist_everything
from orders.models import Order

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, *, timeout: float = 40, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; worker log:\n{worker.log()[-3000:] if worker else ''}")


@pytest.fixture
def world():
    launch, (sku,) = make_launch(auto_apply=True)
    stores = make_stores(2)
    online = stores[0].__class__.objects.get(code="ONLINE")
    add_orders(launch=launch, sku=sku, pool=online, count=20)
    add_orders(launch=launch, sku=sku, pool=stores[0], count=5)
    waitlist_everything(launch)
    return launch, sku, online


def drop(inbox, name: str, sku) -> None:
    (inbox / name).write_text(
        f"reference,expected_on,sku,quantity\nDLV-W1,{timezone.localdate()},{sku.code},40\n"
    )


def ledger_counts() -> dict[str, int]:
    return {
        kind: StockMovement.objects.filter(kind=kind).count()
        for kind in ("receipt", "transfer_out", "transfer_in")
    }


def test_inbox_manifest_is_received_once_and_again_changes_nothing(world, celery_worker_factory, tmp_path):
    launch, sku, online = world
    worker = celery_worker_factory(extra_env={"DELIVERY_INBOX_DIR": str(tmp_path)})
    drop(tmp_path, "week29.csv", sku)
    intake_due_deliveries.delay()
    wait_for(
        lambda: Delivery.objects.filter(reference="DLV-W1", status="distributed").exists(), worker=worker
    )
    wait_for(lambda: Order.objects.filter(pool=online, status="allocated").count() == 20, worker=worker)
    first = ledger_counts()
    assert first == {"receipt": 1, "transfer_out": 1, "transfer_in": 3}  # online and both stores
    assert (tmp_path / "processed" / "week29.csv").exists()

    drop(tmp_path, "week29.csv", sku)  # the supplier sends the same file again
    intake_due_deliveries.delay()
    wait_for(lambda: len(list((tmp_path / "processed").iterdir())) == 2, worker=worker)
    time.sleep(0.5)
    assert ledger_counts() == first
    assert Delivery.objects.count() == 1
    assert stock_reconcile() == []


def test_worker_killed_during_intake_finishes_it_exactly_once_after_restart(
    world, celery_worker_factory, tmp_path
):
    launch, sku, online = world
    # The worker pauses inside the distribution transaction, long enough to be killed there.
    slow = celery_worker_factory(
        extra_env={"DELIVERY_INBOX_DIR": str(tmp_path), "INTAKE_PAUSE_SECONDS": "60"}
    )
    drop(tmp_path, "week29.csv", sku)
    intake_due_deliveries.delay()
    wait_for(lambda: Delivery.objects.filter(reference="DLV-W1", status="received").exists(), worker=slow)
    wait_for(lambda: AllocationPlan.objects.filter(status="approved").exists(), worker=slow)
    time.sleep(1.0)  # now inside plan_apply: transfers written, not committed
    slow.kill()

    delivery = Delivery.objects.get(reference="DLV-W1")
    assert delivery.status == Delivery.Status.RECEIVED
    assert ledger_counts() == {"receipt": 1, "transfer_out": 0, "transfer_in": 0}  # nothing half applied
    assert stock_reconcile() == []

    worker = celery_worker_factory(extra_env={"DELIVERY_INBOX_DIR": str(tmp_path)})
    intake_due_deliveries.delay()  # the next beat tick (or the redelivered message) resumes it
    wait_for(
        lambda: Delivery.objects.filter(reference="DLV-W1", status="distributed").exists(), worker=worker
    )
    wait_for(lambda: Order.objects.filter(pool=online, status="allocated").count() == 20, worker=worker)
    intake_due_deliveries.delay()  # and once more: nothing is applied twice
    time.sleep(1.5)
    assert ledger_counts() == {"receipt": 1, "transfer_out": 1, "transfer_in": 3}
    assert AllocationPlan.objects.get().status == AllocationPlan.Status.APPLIED
    assert stock_reconcile() == []
