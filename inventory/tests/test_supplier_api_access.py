"""Who may announce a delivery, and what a supplier learns about deliveries not its own."""

import datetime
import json

import pytest
from django.utils import timezone

from inventory.models import Delivery
from inventory.tests.world import make_launch
from stores.models import Partner, PartnerAPIKey
from stores.tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/deliveries/"


def supplier(code: str, **key_fields) -> str:
    partner = PartnerFactory(code=code, kind=Partner.Kind.SUPPLIER)
    _, key = PartnerAPIKey.objects.create_key(
        name=code, partner=partner, scope=PartnerAPIKey.Scope.DELIVERIES, **key_fields
    )
    return key


def post(client, key: str, reference: str, quantity: int = 8):
    body = {
        "reference": reference,
        "expected_on": str(timezone.localdate()),
        "lines": [{"sku": "IP3G-0", "quantity": quantity}],
    }
    return client.post(
        URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {key}"
    )


def test_an_expired_supplier_key_is_refused_like_a_revoked_one(client):
    make_launch()
    expired = supplier("late", expiry_date=timezone.now() - datetime.timedelta(minutes=1))
    response = post(client, expired, "DLV-1")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert not Delivery.objects.exists()


def test_a_supplier_learns_nothing_of_another_suppliers_delivery_by_its_reference(client):
    make_launch()
    first, second = supplier("apple"), supplier("foxconn")
    assert post(client, first, "DLV-1", quantity=120).status_code == 201

    again = post(client, first, "DLV-1", quantity=120)
    assert again.status_code == 200 and again.json()["delivery"]["lines"][0]["quantity"] == 120
    other = post(client, second, "DLV-1", quantity=5)
    assert other.status_code == 400 and other.json()["error"]["code"] == "validation_error"
    assert "120" not in other.content.decode()
    delivery = Delivery.objects.get()
    assert delivery.supplier.code == "apple" and delivery.lines.get().quantity == 120
