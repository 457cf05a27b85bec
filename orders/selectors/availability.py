"""What is left in a pool and who waits for it: the one reading of availability.

Waiting counts every order still owed a unit of the pool: the waitlist the allocator
keeps (PoolState.waiting) and the orders it has not seen yet (queued, a second's worth,
read through the partial index of queued orders). The partner API and the customer's
order page both show this figure.
"""

from dataclasses import dataclass

from django.db.models import Count

from inventory.models import SKU, Launch
from inventory.selectors import pool_available
from orders.models import Order, PoolState


@dataclass(frozen=True)
class PoolAvailability:
    sku: SKU
    units_left: int
    waiting: int
    where: str = ""  # how the pool reads in a sentence ("home delivery", "collection at ...")

    @property
    def sold_out(self) -> bool:
        return self.units_left <= 0


def pool_waiting(*, launch: Launch, pool_id: int, sku_ids: list[int]) -> dict[int, int]:
    """Orders still owed a unit of the pool, per SKU: the allocator's waitlist count and the
    queued orders it has not seen yet. Two small queries, whatever the waitlist's length."""
    waiting: dict[int, int] = dict.fromkeys(sku_ids, 0)
    for sku_id, n in PoolState.objects.filter(launch=launch, pool_id=pool_id, sku_id__in=sku_ids).values_list(
        "sku_id", "waiting"
    ):
        waiting[sku_id] += n
    for sku_id, n in (
        Order.objects.filter(launch=launch, status=Order.Status.QUEUED, pool_id=pool_id, sku_id__in=sku_ids)
        .values("sku_id")
        .annotate(n=Count("sequence"))
        .values_list("sku_id", "n")
    ):
        waiting[sku_id] += n
    return waiting


def pool_availability(
    *, launch: Launch, pool_id: int | None, skus: list[SKU], where: str = ""
) -> list[PoolAvailability]:
    """Per SKU, in the order given: units free in the pool and orders waiting for it. Three queries."""
    sku_ids = [sku.pk for sku in skus]
    free = pool_available(pool_id=pool_id, sku_ids=sku_ids)
    waiting = (
        pool_waiting(launch=launch, pool_id=pool_id, sku_ids=sku_ids)
        if pool_id is not None
        else dict.fromkeys(sku_ids, 0)
    )
    return [
        PoolAvailability(sku=sku, units_left=free[sku.pk], waiting=waiting[sku.pk], where=where)
        for sku in skus
    ]
