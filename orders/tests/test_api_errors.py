"""Every error row of API.md's table, and hostile bodies: the envelope, the status, nothing written."""

import datetime
import socket
import time

import pytest
from django.test import Client

from orders.api.overload import header_queue_ms, socket_idle_ms
from orders.models import Order
from orders.services.admission import order_admit
from orders.tests.api_support import (
    BULK,
    ORDERS,
    assert_envelope,
    assert_nothing_written,
    order_body,
    partner_caller,
    partner_store,
)
from stores.models import PartnerAPIKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def caller(launch_with_stock):
    launch_with_stock(online_units=5)
    return partner_caller()


def post_raw(caller, body: bytes, content_type: str = "application/json", path: str = ORDERS, **extra):
    return caller.client.generic("POST", path, body, content_type=content_type, **extra)


# --- 400 invalid_json ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"launch": "iphone-3g",',
        b"[]",
        b'[{"launch": "iphone-3g"}]',
        b'"a string"',
        b"42",
        b"null",
        b'{"launch": "\xff\xfe"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser should go
        b'{"launch": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b"\x00\x00\x00",
        b'{"launch": NaN}',
    ],
)
def test_bodies_that_are_not_a_json_object_are_invalid_json(caller, body):
    assert_envelope(post_raw(caller, body), 400, "invalid_json")
    assert_nothing_written()


def test_a_bulk_item_that_is_not_an_object_is_invalid_json_in_its_result(caller):
    results = caller.client.post(BULK, {"orders": [order_body(), "D0000002", [1]]}, format="json").json()[
        "results"
    ]
    assert [r["status"] for r in results] == [202, 400, 400]
    assert {r["error"]["code"] for r in results[1:]} == {"invalid_json"}


def test_json_sent_with_another_content_type_is_still_read(caller):
    response = post_raw(
        caller,
        b'{"launch": "iphone-3g", "customer": "D0000001", "postcode": "SW1A 1AA", "sku": "IP3G-8GB-BLACK", '
        b'"fulfilment": "delivery"}',
        content_type="text/plain",
    )
    assert response.status_code == 202


def test_accept_header_never_turns_an_error_into_html(caller):
    response = caller.client.post(ORDERS, b"nope", content_type="application/json", HTTP_ACCEPT="text/html")
    assert_envelope(response, 400, "invalid_json")


# --- 400 validation_error --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"launch", "customer", "postcode", "sku", "fulfilment"}),
        ({k: v for k, v in order_body().items() if k != "postcode"}, {"postcode"}),
        (order_body(postcode=""), {"postcode"}),
        (order_body(postcode="SW1A\x001AA"), {"postcode"}),
        (order_body(postcode="SW1A-1AA"), {"postcode"}),
        (order_body(postcode="S" * 13), {"postcode"}),
        (order_body(postcode=12345), {"postcode"}),
        (order_body(customer=12345678), {"customer"}),
        (order_body(customer=None), {"customer"}),
        (order_body(customer=["D0000001"]), {"customer"}),
        (order_body(customer={"id": 1}), {"customer"}),
        (order_body(customer=True), {"customer"}),
        (order_body(customer=1.5e308), {"customer"}),
        (order_body(launch=""), {"launch"}),
        (order_body(launch="x" * 100_000), {"launch"}),
        (order_body(customer="D000\x00001"), {"customer"}),
        (order_body(sku="IP3G\n8GB"), {"sku"}),
        (order_body(fulfilment="teleport"), {"fulfilment"}),
        (order_body(fulfilment=1), {"fulfilment"}),
        (order_body(fulfilment="collect"), {"store"}),
        (order_body(fulfilment="collect", store=7), {"store"}),
        (order_body(fulfilment="collect", store="S999"), {"store"}),  # no such store
    ],
)
def test_missing_or_wrong_fields_are_validation_errors_naming_them(caller, body, fields):
    error = assert_envelope(caller.client.post(ORDERS, body, format="json"), 400, "validation_error")
    assert set(error["details"]) == fields
    assert all(isinstance(m, list) and all(isinstance(x, str) for x in m) for m in error["details"].values())
    assert_nothing_written()


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9", "line\r"])
def test_bad_idempotency_keys_are_validation_errors(caller, key):
    response = caller.client.post(ORDERS, order_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    error = assert_envelope(response, 400, "validation_error")
    assert "Idempotency-Key" in error["details"]
    assert_nothing_written()


def test_a_content_length_that_is_not_a_number_is_refused(caller):
    response = post_raw(caller, b"{}", CONTENT_LENGTH="lots")
    assert response.status_code == 400
    assert_nothing_written()


# --- 401 not_authenticated -------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Api-Key",
        "Api-Key ",
        "Bearer abc.def",
        "Api-Key nodot",
        "Api-Key abcdefgh.wrongsecret",
        "Api-Key \x00",
    ],
)
def test_missing_or_unknown_keys_are_not_authenticated(caller, header):
    client = Client()
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.post(ORDERS, order_body(), content_type="application/json", **extra)
    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"
    assert_nothing_written()
    assert_envelope(client.get("/api/v1/launches/", **extra), 401, "not_authenticated")


def test_a_revoked_key_is_not_authenticated(caller):
    caller.api_key.revoked = True
    caller.api_key.save()
    assert_envelope(caller.client.post(ORDERS, order_body(), format="json"), 401, "not_authenticated")
    assert_nothing_written()


def test_a_right_prefix_with_a_wrong_secret_is_not_authenticated(caller):
    prefix = caller.key.split(".")[0]
    caller.client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{'x' * 32}")
    assert_envelope(caller.client.get("/api/v1/launches/"), 401, "not_authenticated")


def test_the_keyword_is_case_insensitive(caller):
    caller.client.credentials(HTTP_AUTHORIZATION=f"api-key {caller.key}")
    assert caller.client.get("/api/v1/launches/").status_code == 200


# --- 403 permission_denied -------------------------------------------------------------


def test_a_supplier_key_may_not_use_the_orders_api(launch_with_stock):
    launch_with_stock(online_units=5)
    supplier = partner_caller(code="supplier", scope=PartnerAPIKey.Scope.DELIVERIES)
    assert_envelope(supplier.client.post(ORDERS, order_body(), format="json"), 403, "permission_denied")
    assert_envelope(supplier.client.get("/api/v1/stores/"), 403, "permission_denied")
    assert_nothing_written()


def test_an_inactive_partner_may_not_order(caller):
    caller.partner.is_active = False
    caller.partner.save()
    assert_envelope(caller.client.post(ORDERS, order_body(), format="json"), 403, "permission_denied")
    assert_nothing_written()


def test_collect_at_another_partners_store_is_permission_denied(caller):
    other = partner_caller(code="other")
    partner_store(partner=other.partner, code="Q001")
    response = caller.client.post(ORDERS, order_body(fulfilment="collect", store="Q001"), format="json")
    assert_envelope(response, 403, "permission_denied")
    assert_nothing_written()


# --- 404 not_found, 405 ----------------------------------------------------------------


def test_unknown_launch_is_not_found(caller):
    assert_envelope(
        caller.client.post(ORDERS, order_body(launch="iphone-4"), format="json"), 404, "not_found"
    )
    assert_nothing_written()


@pytest.mark.parametrize("path", ["/api/v2/orders/", "/api/nothing", "/api/v1/stores/X/more/"])
def test_unknown_addresses_under_api_are_json_not_found(caller, path):
    assert_envelope(caller.client.get(path), 404, "not_found")
    assert_envelope(Client().post(path, b"{}", content_type="application/json"), 404, "not_found")


def test_an_unknown_order_reference_is_not_found(caller):
    assert_envelope(caller.client.get(f"{ORDERS}LDNOSUCHREF00"), 404, "not_found")


def test_wrong_method_is_an_envelope_too(caller):
    assert_envelope(caller.client.delete(ORDERS), 405, "method_not_allowed")
    assert_envelope(caller.client.get(BULK), 405, "method_not_allowed")


# --- 409 -------------------------------------------------------------------------------


def test_second_order_of_a_customer_is_already_ordered_naming_the_first(caller):
    first = caller.client.post(ORDERS, order_body(), format="json").json()["reference"]
    error = assert_envelope(caller.client.post(ORDERS, order_body(), format="json"), 409, "already_ordered")
    assert error["details"]["reference"] == first
    assert Order.objects.count() == 1


def test_an_online_order_counts_for_the_partner_but_its_reference_is_not_told(caller):
    order_admit(
        launch="iphone-3g", customer="D0000001", sku="IP3G-8GB-BLACK", fulfilment="delivery", channel="online"
    )
    error = assert_envelope(caller.client.post(ORDERS, order_body(), format="json"), 409, "already_ordered")
    assert "reference" not in error.get("details", {})


def test_same_idempotency_key_with_another_body_is_a_conflict(caller):
    caller.client.post(ORDERS, order_body("D0000001"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = caller.client.post(ORDERS, order_body("D0000002"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_envelope(response, 409, "idempotency_conflict")
    assert Order.objects.count() == 1


def test_orders_outside_the_window_are_launch_not_open(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    launch.opens_at = launch.opens_at + datetime.timedelta(days=2)
    launch.closes_at = launch.closes_at + datetime.timedelta(days=2)
    launch.save()
    caller = partner_caller()
    assert_envelope(caller.client.post(ORDERS, order_body(), format="json"), 409, "launch_not_open")
    assert_nothing_written()


# --- 413 payload_too_large -------------------------------------------------------------


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(caller, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"launch": "' + b"x" * 2000 + b'"}'
    assert_envelope(post_raw(caller, body), 413, "payload_too_large")
    assert_envelope(post_raw(caller, body, path=BULK), 413, "payload_too_large")
    assert_nothing_written()


def test_a_bulk_of_more_than_1000_orders_is_payload_too_large(caller):
    orders = [order_body(f"D{n:07d}") for n in range(1, 1002)]
    assert_envelope(caller.client.post(BULK, {"orders": orders}, format="json"), 413, "payload_too_large")
    assert_nothing_written()


# --- 422 -------------------------------------------------------------------------------


@pytest.mark.parametrize("customer", ["N0000001", "D9999999", "d0000001"])
def test_unknown_or_unregistered_customers_are_not_eligible(caller, customer):
    assert_envelope(caller.client.post(ORDERS, order_body(customer), format="json"), 422, "not_eligible")
    assert_nothing_written()


def test_a_sku_outside_the_launch_is_unknown_sku(caller):
    error = assert_envelope(
        caller.client.post(ORDERS, order_body(sku="IP3G-64GB-GOLD"), format="json"), 422, "unknown_sku"
    )
    assert error["details"]["sku"] == ["IP3G-8GB-BLACK"]
    assert_nothing_written()


# --- 429 throttled ---------------------------------------------------------------------


def test_a_key_over_its_rate_is_throttled_with_retry_after(caller, settings):
    settings.API_THROTTLE_RATE = "3/min"
    answers = [caller.client.get("/api/v1/launches/") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    response = caller.client.post(ORDERS, order_body(), format="json")
    assert_envelope(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert_nothing_written()
    # Another partner's key has its own budget.
    other = partner_caller(code="other")
    assert other.client.get("/api/v1/launches/").status_code == 200


# --- 503 overloaded --------------------------------------------------------------------


def test_the_shedder_refuses_admissions_fast_and_writes_nothing(caller, settings, django_assert_num_queries):
    settings.ADMISSION_MAX_IN_FLIGHT = 0
    with django_assert_num_queries(0):  # before authentication, parsing or any query
        single = caller.client.post(ORDERS, order_body(), format="json")
        bulk = caller.client.post(BULK, {"orders": [order_body("D0000002")]}, format="json")
        anonymous = Client().post(ORDERS, b"garbage", content_type="application/json")
    for response in (single, bulk, anonymous):
        error = assert_envelope(response, 503, "overloaded")
        assert error["details"]["reason"] == "too_many_in_flight"
        assert response["Retry-After"] == "1"
    assert_nothing_written()
    # Reads are never shed.
    assert caller.client.get("/api/v1/launches/").status_code == 200


def test_requests_that_queued_too_long_are_shed(caller, settings):
    settings.ADMISSION_MAX_QUEUE_MS = 500
    stale = f"t={time.time() - 2:.3f}"
    response = caller.client.post(ORDERS, order_body(), format="json", HTTP_X_REQUEST_START=stale)
    assert assert_envelope(response, 503, "overloaded")["details"]["reason"] == "queued_too_long"
    assert_nothing_written()
    fresh = f"t={time.time():.3f}"
    assert (
        caller.client.post(ORDERS, order_body(), format="json", HTTP_X_REQUEST_START=fresh).status_code == 202
    )


def test_proxy_queue_start_is_read_in_seconds_milli_and_microseconds():
    now = 1_700_000_010.0
    assert header_queue_ms("t=1700000000.5", now) == pytest.approx(9500)
    assert header_queue_ms("1700000000500", now) == pytest.approx(9500)
    assert header_queue_ms("t=1700000000500000", now) == pytest.approx(9500)
    assert header_queue_ms("garbage", now) is None


def test_the_kernel_says_how_long_a_request_waited_on_its_socket():
    """TCP_INFO's last-data-received age is the time a request sat in the accept queue."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    try:
        client.sendall(b"POST /api/v1/orders/ HTTP/1.1\r\n\r\n")
        time.sleep(0.3)
        server_side, _ = listener.accept()
        with server_side:
            waited = socket_idle_ms(server_side)
            assert waited is not None and 250 <= waited <= 2000
            server_side.recv(100)
            client.sendall(b"more")
            time.sleep(0.05)
            assert socket_idle_ms(server_side) < 250
    finally:
        client.close()
        listener.close()
    assert socket_idle_ms(None) is None
