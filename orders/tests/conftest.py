import pytest

from customers.models import UpgradeRegistration
from customers.tests.conftest import smtp_sink  # noqa: F401 - the real SMTP server, for stock notices
from customers.tests.factories import CustomerFactory
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.api.auth import partner_key_cache_clear
from orders.services.catalogue import catalogue_clear
from stores.tests.factories import StoreFactory


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    """Launches, stores and partner keys are cached in process; each test has its own."""
    catalogue_clear()
    partner_key_cache_clear()
    yield
    catalogue_clear()
    partner_key_cache_clear()


@pytest.fixture
def launch_with_stock(db):
    """A factory: an open launch with one SKU, an online pool and one store, with stock.

    Returns a function so a test chooses the units; customers are registered in bulk.
    """

    def make(*, online_units: int = 0, store_units: int = 0, customers: int = 10, slug: str = "iphone-3g"):
        sku = SKUFactory(code="IP3G-8GB-BLACK")
        launch = LaunchFactory(slug=slug, skus=[sku])
        store = StoreFactory(code="S001")
        online, at_store = location_online_pool(), location_for_store(store=store)
        if online_units:
            stock_receive(location=online, sku=sku, quantity=online_units, reference="test-seed")
        if store_units:
            stock_receive(location=at_store, sku=sku, quantity=store_units, reference="test-seed")
        people = [CustomerFactory(account_number=f"D{n:07d}") for n in range(1, customers + 1)]
        UpgradeRegistration.objects.bulk_create(
            [UpgradeRegistration(customer=c, launch=launch, preferred_sku=sku) for c in people]
        )
        return launch, sku, store, people

    return make
