"""A partner's client generated from the served schema (openapi-python-client) works:
it places, lists and reads orders, reads a refusal's typed details, and posts a manifest.

The schema is fetched from the running app and the client generated from it in the test,
so a schema that drifts from the API (an answer the client cannot parse, a missing
security entry, an untyped field) fails here, as it would for a partner.
"""

import datetime
import importlib
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from orders.tests.api_support import POSTCODE, partner_caller
from stores.models import PartnerAPIKey

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PACKAGE = "launchday_partner_client"


@pytest.fixture
def generated(live_server, tmp_path, monkeypatch):
    """The client package generated from the live schema, imported."""
    schema = tmp_path / "schema.json"
    with urllib.request.urlopen(f"{live_server.url}/api/schema/?format=json", timeout=30) as answer:  # noqa: S310
        schema.write_bytes(answer.read())
    config = tmp_path / "config.yml"
    config.write_text("post_hooks: []\n")  # no formatter run: the test needs the code, not its looks
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [str(generator), "generate", "--path", str(schema), "--output-path", str(tmp_path / PACKAGE),
         "--meta", "none", "--config", str(config)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    return importlib.import_module(PACKAGE)


def module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_orders_reads_refusals_and_posts_a_manifest(
    launch_with_stock, generated, live_server
):
    launch_with_stock(online_units=5, customers=3)
    partner = partner_caller()
    supplier = partner_caller(code="apple-supply", scope=PartnerAPIKey.Scope.DELIVERIES)
    client = generated.AuthenticatedClient(base_url=live_server.url, token=partner.key, prefix="Api-Key")
    models = module("models")
    orders_create, orders_list, orders_retrieve = (
        module(f"api.v1.{name}") for name in ("orders_create", "orders_list", "orders_retrieve")
    )

    def order(account: str, postcode: str = POSTCODE):
        body = models.OrderRequest(
            launch="iphone-3g",
            customer=account,
            sku="IP3G-8GB-BLACK",
            fulfilment=models.FulfilmentEnum("delivery"),
            postcode=postcode,
        )
        return orders_create.sync_detailed(
            client=client, body=body, idempotency_key=f"gen-{account}-{postcode}"
        )

    placed = order("D0000001")
    assert placed.status_code == 202
    assert isinstance(placed.parsed, models.Order)
    reference = placed.parsed.reference

    listed = orders_list.sync_detailed(client=client, launch="iphone-3g", page_size=10)
    assert listed.status_code == 200 and isinstance(listed.parsed, models.OrderPage)
    assert [o.reference for o in listed.parsed.results] == [reference]

    read = orders_retrieve.sync_detailed(reference, client=client)
    assert read.status_code == 200 and read.parsed.reference == reference
    assert read.parsed.status in set(models.OrderStatusEnum)

    again = order("D0000001", postcode="sw1a 1aa")
    assert again.status_code == 409 and isinstance(again.parsed, models.Error)
    assert again.parsed.error.code == models.CodeEnum("already_ordered")
    assert again.parsed.error.details.reference == reference  # typed, not a dict lookup

    wrong = order("D0000002", postcode="ZZ9 9ZZ")
    assert wrong.status_code == 422 and wrong.parsed.error.code == models.CodeEnum("not_eligible")

    delivery_post = module("api.v1.delivery_manifest_post")
    supplier_client = generated.AuthenticatedClient(
        base_url=live_server.url, token=supplier.key, prefix="Api-Key"
    )
    manifest = models.Manifest(
        reference="GEN-0001",
        expected_on=datetime.date.today() + datetime.timedelta(days=3),
        lines=[models.ManifestLine(sku="IP3G-8GB-BLACK", quantity=120)],
    )
    announced = delivery_post.sync_detailed(client=supplier_client, body=manifest)
    assert announced.status_code == 201, announced.content
    assert isinstance(announced.parsed, models.DeliveryAnnounced) and announced.parsed.created
    # The partner's key may not announce deliveries: a typed refusal, not a crash.
    refused = delivery_post.sync_detailed(client=client, body=manifest)
    assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
