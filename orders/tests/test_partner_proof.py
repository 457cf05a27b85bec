"""A partner's order proves the customer with their postcode, learns nothing it should not,
and a key that keeps guessing postcodes is counted and stopped.

Both paths of POST /api/v1/orders/ (the DRF view, and the ASGI front uvicorn serves it
with) and the bulk endpoint are held to it.
"""

import orjson
import pytest

from orders.api.throttles import proof_failures_clear
from orders.models import Order
from orders.services.admission import order_admit
from orders.tests.api_support import BULK, ORDERS, assert_envelope, order_body, partner_caller
from orders.tests.test_api_front import via_front

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_blocks_remembered():
    proof_failures_clear()
    yield
    proof_failures_clear()


def failures(caller) -> int:
    caller.api_key.refresh_from_db()
    return caller.api_key.proof_failures


def test_a_wrong_postcode_an_unknown_customer_and_an_unregistered_one_get_one_answer(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    answers = [
        caller.client.post(ORDERS, order_body("D0000001", postcode="ZZ9 9ZZ"), format="json"),
        caller.client.post(ORDERS, order_body("X0000001"), format="json"),
        caller.client.post(ORDERS, order_body("N0000001"), format="json"),
    ]
    errors = [assert_envelope(a, 422, "not_eligible") for a in answers]
    assert errors[0] == errors[1] == errors[2]
    assert not Order.objects.exists()
    # Only the wrong postcode of a known customer is a failed proof.
    assert failures(caller) == 1
    assert caller.api_key.proof_failed_at is not None


def test_the_postcode_is_compared_ignoring_case_and_spaces(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    response = caller.client.post(ORDERS, order_body("D0000001", postcode=" sw1a1aa"), format="json")
    assert response.status_code == 202, response.content
    assert failures(caller) == 0


def test_a_replay_with_another_postcode_is_another_body(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    first = caller.client.post(ORDERS, order_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202
    same = caller.client.post(
        ORDERS, order_body(postcode="sw1a 1aa"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert same.status_code == 202 and same.json()["reference"] == first.json()["reference"]
    other = caller.client.post(
        ORDERS, order_body(postcode="ZZ9 9ZZ"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert_envelope(other, 409, "idempotency_conflict")


def test_already_ordered_names_the_reference_only_to_the_partner_that_placed_it(launch_with_stock):
    launch_with_stock(online_units=5, customers=3)
    caller, rival = partner_caller(), partner_caller(code="rival")
    own = caller.client.post(ORDERS, order_body("D0000001"), format="json").json()["reference"]
    order_admit(
        launch="iphone-3g", customer="D0000002", sku="IP3G-8GB-BLACK", fulfilment="delivery", channel="online"
    )

    again = assert_envelope(
        caller.client.post(ORDERS, order_body("D0000001"), format="json"), 409, "already_ordered"
    )
    assert again["details"]["reference"] == own
    for client, account in ((rival.client, "D0000001"), (caller.client, "D0000002")):
        error = assert_envelope(
            client.post(ORDERS, order_body(account), format="json"), 409, "already_ordered"
        )
        assert "reference" not in error.get("details", {})
        assert own.encode() not in client.post(ORDERS, order_body(account), format="json").content

    bulk = rival.client.post(
        BULK, {"orders": [order_body("D0000001"), order_body("D0000003")]}, format="json"
    )
    first, second = bulk.json()["results"]
    assert first["error"]["code"] == "already_ordered" and "reference" not in first["error"]["details"]
    assert second["status"] == 202
    mine = caller.client.post(BULK, {"orders": [order_body("D0000001")]}, format="json").json()["results"][0]
    assert mine["error"]["details"]["reference"] == own


def test_the_front_proves_and_withholds_as_the_view_does(launch_with_stock):
    launch_with_stock(online_units=5, customers=3)
    caller, rival = partner_caller(), partner_caller(code="rival")
    headers = {"Authorization": f"Api-Key {rival.key}", "Content-Type": "application/json"}
    own = caller.client.post(ORDERS, order_body("D0000001"), format="json").json()["reference"]

    status, _, body = via_front(ORDERS, orjson.dumps(order_body("D0000001")), headers)
    assert status == 409 and own.encode() not in body
    status, _, body = via_front(ORDERS, orjson.dumps(order_body("D0000002", postcode="ZZ9 9ZZ")), headers)
    assert status == 422 and orjson.loads(body)["error"]["code"] == "not_eligible"
    assert failures(rival) == 1 and failures(caller) == 0


def test_bulk_wrong_postcodes_are_refused_one_by_one_and_counted(launch_with_stock):
    launch_with_stock(online_units=5, customers=4)
    caller = partner_caller()
    items = [
        order_body("D0000001"),
        order_body("D0000002", postcode="ZZ9 9ZZ"),
        order_body("D0000003", postcode="AB1 2CD"),
        order_body("X0000001"),
    ]
    results = caller.client.post(BULK, {"orders": items}, format="json").json()["results"]
    assert [r["status"] for r in results] == [202, 422, 422, 422]
    assert {r["error"]["code"] for r in results[1:]} == {"not_eligible"}
    assert Order.objects.count() == 1
    assert failures(caller) == 2


def test_a_key_that_keeps_guessing_postcodes_is_throttled_on_both_paths(launch_with_stock, settings):
    settings.PARTNER_PROOF_FAILURE_RATE = "3/d"  # a day: no window edge inside the test
    launch_with_stock(online_units=5, customers=8)
    guesser, honest = partner_caller(), partner_caller(code="honest")
    for postcode in ("AA1 1AA", "BB1 1BB", "CC1 1CC"):
        wrong = guesser.client.post(ORDERS, order_body("D0000001", postcode=postcode), format="json")
        assert_envelope(wrong, 422, "not_eligible")
    # Blocked now, even with the right postcode, on the view, the bulk and the front.
    blocked = guesser.client.post(ORDERS, order_body("D0000002"), format="json")
    assert_envelope(blocked, 429, "throttled")
    assert int(blocked["Retry-After"]) > 0
    assert_envelope(
        guesser.client.post(BULK, {"orders": [order_body("D0000003")]}, format="json"), 429, "throttled"
    )
    headers = {"Authorization": f"Api-Key {guesser.key}", "Content-Type": "application/json"}
    status, front_headers, _ = via_front(ORDERS, orjson.dumps(order_body("D0000004")), headers)
    assert status == 429 and int(front_headers["retry-after"]) > 0
    assert not Order.objects.exists()
    assert failures(guesser) == 3
    # Reading is not ordering: the key still lists its (no) orders; other keys order on.
    assert guesser.client.get(ORDERS).status_code == 200
    assert honest.client.post(ORDERS, order_body("D0000005"), format="json").status_code == 202
