"""Helpers for the partner API tests: a partner with a key, a client using it, the envelope."""

from dataclasses import dataclass

from rest_framework.test import APIClient

from inventory.services import location_for_store, stock_receive
from orders.models import Order
from stores.models import Partner, PartnerAPIKey
from stores.tests.factories import PartnerFactory, StoreFactory

ORDERS = "/api/v1/orders/"
BULK = "/api/v1/orders/bulk"
POSTCODE = "SW1A 1AA"  # CustomerFactory's: every test customer lives there


@dataclass
class Caller:
    partner: Partner
    api_key: PartnerAPIKey
    key: str
    client: APIClient


def partner_caller(*, code: str = "cpw", scope: str = PartnerAPIKey.Scope.ORDERS) -> Caller:
    # A key's scope follows its partner's kind: suppliers hold deliveries keys.
    kind = Partner.Kind.SUPPLIER if scope == PartnerAPIKey.Scope.DELIVERIES else Partner.Kind.RETAILER
    partner = PartnerFactory(code=code, kind=kind)
    api_key, key = PartnerAPIKey.objects.create_key(name=f"{code} test", partner=partner, scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return Caller(partner=partner, api_key=api_key, key=key, client=client)


def partner_store(*, partner: Partner, code: str, sku=None, units: int = 0):
    store = StoreFactory(code=code, partner=partner)
    if units:
        stock_receive(
            location=location_for_store(store=store), sku=sku, quantity=units, reference=f"seed-{code}"
        )
    return store


def order_body(account: str = "D0000001", **overrides) -> dict:
    body = {
        "launch": "iphone-3g",
        "customer": account,
        "postcode": POSTCODE,
        "sku": "IP3G-8GB-BLACK",
        "fulfilment": "delivery",
    }
    body.update(overrides)
    return body


def assert_envelope(response, status: int, code: str) -> dict:
    """The answer is API.md's error envelope with this status and code; returns `error`."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    data = response.json()
    assert set(data) == {"error"}
    error = data["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error.get("details", {}), dict)
    return error


def assert_nothing_written() -> None:
    assert Order.objects.count() == 0
