"""A launch with a partner that listens: stores, stock, registered customers, orders."""

from __future__ import annotations

from dataclasses import dataclass

from customers.models import Customer, UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.models import SKU, Launch
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.catalogue import catalogue_clear
from stores.models import Partner, Store, WebhookEndpoint, WebhookEventType
from stores.services.webhooks import webhook_endpoint_create
from stores.tests.factories import PartnerFactory, StoreFactory


@dataclass
class World:
    launch: Launch
    sku: SKU
    partner: Partner
    other: Partner  # a second partner, listening too
    store: Store  # the partner's store
    customers: list[Customer]

    def order(self, n: int, *, collect: bool = False, partner: Partner | None | str = "mine") -> Order:
        """Customer n's order, placed by `partner` (by default this world's; None: online)."""
        partner = self.partner if partner == "mine" else partner
        assert partner is None or isinstance(partner, Partner)
        admission = order_admit(
            launch=self.launch.slug,
            customer=self.customers[n].account_number,
            sku=self.sku.code,
            fulfilment=Order.Fulfilment.COLLECT if collect else Order.Fulfilment.DELIVERY,
            store=self.store.code if collect else None,
            channel=Order.Channel.PARTNER if partner else Order.Channel.ONLINE,
            partner_id=partner.pk if partner else None,
        )
        return admission.order

    def endpoint(
        self, url: str, *, partner: Partner | None = None, types: list[str] | None = None
    ) -> WebhookEndpoint:
        return webhook_endpoint_create(
            partner=partner or self.partner, url=url, event_types=types or list(WebhookEventType.values)
        )


def world_make(*, online_units: int = 1, store_units: int = 1, customers: int = 6) -> World:
    catalogue_clear()
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    launch = LaunchFactory(slug="iphone-3g", skus=[sku])
    partner = PartnerFactory(code="cpw", name="Carphone Warehouse", contact_email="integrations@cpw.example")
    other = PartnerFactory(code="phones4u", name="Phones 4u", contact_email="tech@p4u.example")
    store = StoreFactory(code="S011", name="CPW Oxford Street", partner=partner)
    if online_units:
        stock_receive(location=location_online_pool(), sku=sku, quantity=online_units, reference="test-seed")
    if store_units:
        stock_receive(
            location=location_for_store(store=store), sku=sku, quantity=store_units, reference="test-seed"
        )
    people = [
        CustomerFactory(account_number=f"D{n:07d}", postcode="AB1 2CD") for n in range(1, customers + 1)
    ]
    UpgradeRegistration.objects.bulk_create(
        [UpgradeRegistration(customer=c, launch=launch, preferred_sku=sku) for c in people]
    )
    return World(launch, sku, partner, other, store, people)
