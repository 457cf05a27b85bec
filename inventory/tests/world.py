"""A small launch world for intake tests: SKUs, stores with locations, waiting orders."""

from django.db import connection

from customers.tests.factories import CustomerFactory
from inventory.models import SKU, Launch, Location
from inventory.services import location_central, location_for_store, location_online_pool
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.services.admission import references_new
from orders.services.allocation import launch_allocate
from stores.tests.factories import StoreFactory


def make_launch(
    *, skus: int = 1, slug: str = "iphone-3g", auto_apply: bool = False
) -> tuple[Launch, list[SKU]]:
    sku_rows = [SKUFactory(code=f"IP3G-{i}") for i in range(skus)]
    launch = LaunchFactory(slug=slug, skus=sku_rows, auto_apply_plans=auto_apply)
    location_central()
    location_online_pool()
    return launch, sku_rows


def make_stores(n: int, *, prefix: str = "S", partner=None) -> list[Location]:
    return [
        location_for_store(store=StoreFactory(code=f"{prefix}{i:03d}", partner=partner)) for i in range(n)
    ]


def add_orders(*, launch: Launch, sku: SKU, pool: Location, count: int, start: int = 0) -> list[Order]:
    """Admitted orders waiting in a pool (collect at a store, or delivery from online)."""
    orders = []
    for i in range(count):
        customer = CustomerFactory(account_number=f"W{pool.code}{sku.pk}{start + i:05d}")
        orders.append(
            Order(
                reference=references_new(1)[0],
                launch=launch,
                customer=customer,
                sku=sku,
                channel=Order.Channel.ONLINE,
                fulfilment=Order.Fulfilment.DELIVERY if pool.store_id is None else Order.Fulfilment.COLLECT,
                store_id=pool.store_id,
                pool=pool,
            )
        )
    return Order.objects.bulk_create(orders)


def waitlist_everything(launch: Launch) -> None:
    """With no stock anywhere, the allocator puts every queued order on its pool's waitlist."""
    launch_allocate(launch_id=launch.pk)


def close_connection_for_thread():
    connection.close()
