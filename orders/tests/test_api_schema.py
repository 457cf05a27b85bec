"""The served OpenAPI schema agrees with API.md: every path and method is there."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

API_MD_OPERATIONS = {
    ("/api/v1/launches/", "get"),
    ("/api/v1/launches/{slug}/availability", "get"),
    ("/api/v1/orders/", "post"),
    ("/api/v1/orders/bulk", "post"),
    ("/api/v1/orders/{reference}", "get"),
    ("/api/v1/orders/", "get"),
    ("/api/v1/stores/", "get"),
    ("/api/v1/stores/{code}/stock", "get"),
}


def test_schema_is_openapi_3_json_with_every_path_of_api_md():
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in ("application/json", "application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations >= API_MD_OPERATIONS
    order = schema["components"]["schemas"]["Order"]["properties"]
    assert set(order) == {
        "reference", "launch", "customer", "sku", "fulfilment", "store", "channel", "status",
        "queue_position", "created_at",
    }  # fmt: skip
    create = schema["paths"]["/api/v1/orders/"]["post"]
    assert "202" in create["responses"] and "409" in create["responses"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    page = schema["components"]["schemas"]["OrderPage"]["properties"]
    assert set(page) == {"count", "next", "previous", "results"}


def test_docs_page_is_served_from_the_sidecar():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
