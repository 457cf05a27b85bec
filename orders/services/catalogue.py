"""What admission needs to know about launches and stores, cached in each process.

A launch's window, SKUs and limit, and a store's location and partner, change rarely;
reading them on every order would be a round trip per admission. Each process keeps
them for CATALOGUE_SECONDS, so an edit by head office shows within that time.
"""

import datetime
import time
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from config.cache import NotCached
from customers.services.registration import eligibility_local_warm
from inventory.models import Launch
from inventory.services import location_for_store, location_online_pool
from stores.models import Store

CATALOGUE_SECONDS = 5.0


@dataclass(frozen=True)
class LaunchCatalogue:
    id: int
    slug: str
    name: str
    opens_at: datetime.datetime
    closes_at: datetime.datetime
    per_customer_limit: int
    sku_ids: dict[str, int]
    online_pool_id: int
    collect_hold_days: int
    fair_start_seconds: int = 0


@dataclass(frozen=True)
class StoreInfo:
    id: int
    code: str
    partner_id: int | None
    location_id: int


_catalogue: dict[str, tuple[float, LaunchCatalogue | None]] = {}
_stores: dict[str, tuple[float, StoreInfo | None]] = {}


def catalogue_clear() -> None:
    """Forget cached launches and stores (tests, and after head office edits a launch)."""
    _catalogue.clear()
    _stores.clear()


def launch_catalogue(*, slug: str, cached_only: bool = False) -> LaunchCatalogue | None:
    """The launch as admission needs it, or None. With cached_only, from memory or
    NotCached (an event loop must not query)."""
    hit = _catalogue.get(slug)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    if cached_only:
        raise NotCached
    launch = Launch.objects.filter(slug=slug).prefetch_related("skus").first()
    value = None
    if launch is not None:
        value = LaunchCatalogue(
            id=launch.pk,
            slug=launch.slug,
            name=launch.name,
            opens_at=launch.opens_at,
            closes_at=launch.closes_at,
            per_customer_limit=launch.per_customer_limit,
            sku_ids={sku.code: sku.pk for sku in launch.skus.all()},
            # Delivery orders need their pool's row to point at, stock or not.
            online_pool_id=location_online_pool().pk,
            collect_hold_days=launch.collect_hold_days,
            fair_start_seconds=launch.fair_start_seconds,
        )
    _catalogue[slug] = (time.monotonic() + CATALOGUE_SECONDS, value)
    return value


def store_info(*, code: str, cached_only: bool = False) -> StoreInfo | None:
    hit = _stores.get(code)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    if cached_only:
        raise NotCached
    store = Store.objects.filter(code=code, is_active=True).first()
    value = None
    if store is not None:
        value = StoreInfo(
            id=store.pk,
            code=store.code,
            partner_id=store.partner_id,
            location_id=location_for_store(store=store).pk,
        )
    _stores[code] = (time.monotonic() + CATALOGUE_SECONDS, value)
    return value


def admission_warm() -> int:
    """Load the catalogue and the in-process eligibility of every launch open or opening
    within a day, so a new web process answers its first order as fast as its last."""
    soon = timezone.now() + timedelta(days=1)
    launches = Launch.objects.filter(opens_at__lte=soon, closes_at__gt=timezone.now())
    for launch in launches:
        launch_catalogue(slug=launch.slug)
        eligibility_local_warm(launch_id=launch.pk)
    return len(launches)
