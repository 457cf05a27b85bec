"""Issue 12: what a supplier's key can send to the manifest API is refused with the
envelope, never a 500, and writes nothing.

A reference names the delivery in head office's addresses (/office/stock/deliveries/<ref>/...),
so one outside the safe alphabet once made the deliveries page raise NoReverseMatch on
every load. Hostile JSON (NUL, lone surrogates, deep nesting, huge numbers) once reached
the database or the parser's limits.
"""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.manifests import ManifestInvalid, manifest_parse
from inventory.models import Delivery, DeliveryLine, StockMovement
from inventory.tests.world import make_launch
from orders.tests.api_support import assert_envelope, partner_caller
from stores.models import PartnerAPIKey, StaffMembership
from stores.tests.factories import UserFactory, head_office_login

pytestmark = pytest.mark.django_db

MANIFESTS = "/api/v1/deliveries/"
REFERENCE_PROBLEM = "reference must be 1 to 64 letters, digits, '.', '_' or '-'"


@pytest.fixture
def supplier():
    make_launch(skus=2)
    return partner_caller(code="apple-supply", scope=PartnerAPIKey.Scope.DELIVERIES)


@pytest.fixture
def head_office_client(client):
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    return client


def post_raw(supplier, body: bytes, content_type: str = "application/json"):
    return supplier.client.generic("POST", MANIFESTS, body, content_type=content_type)


def manifest_json(reference: str = "DLV-1", quantity: object = 5) -> bytes:
    return json.dumps(
        {
            "reference": reference,
            "expected_on": str(timezone.localdate()),
            "lines": [{"sku": "IP3G-0", "quantity": quantity}],
        }
    ).encode()


def assert_nothing_written() -> None:
    assert Delivery.objects.count() == 0
    assert DeliveryLine.objects.count() == 0
    assert StockMovement.objects.count() == 0


UNSAFE_REFERENCES = [
    "DLV/1",  # a path separator: {% url %} cannot put it in a <delivery:...> segment
    "../../admin",
    "DLV</script><script>alert(1)</script>",
    "DLV 1",
    "DLV?x=1",
    "DLV#1",
    "DLV%2F1",
    "DLVé",
    "-DLV",  # must start with a letter or digit
    ".hidden",
    "D" * 65,  # one over the limit
]


@pytest.mark.parametrize("reference", UNSAFE_REFERENCES)
def test_a_reference_outside_the_safe_alphabet_is_refused_and_the_deliveries_page_still_answers(
    supplier, head_office_client, reference
):
    error = assert_envelope(post_raw(supplier, manifest_json(reference)), 400, "validation_error")
    assert any(m.startswith(REFERENCE_PROBLEM) for m in error["details"]["file"]), error
    csv_body = f"reference,expected_on,sku,quantity\n{reference},{timezone.localdate()},IP3G-0,5\n"
    error = assert_envelope(post_raw(supplier, csv_body.encode(), "text/csv"), 400, "validation_error")
    assert any(m.startswith(REFERENCE_PROBLEM) for m in error["details"]["file"]), error
    assert_nothing_written()
    # Before the fix the manifest was announced (201) and this page raised NoReverseMatch.
    page = head_office_client.get(reverse("inventory:delivery-list"))
    assert page.status_code == 200
    assert b"No delivery has been announced yet." in page.content


def test_the_deliveries_page_lists_a_safe_reference_beside_a_refused_one(supplier, head_office_client):
    assert post_raw(supplier, manifest_json("DLV-2008.07_A")).status_code == 201
    assert_envelope(post_raw(supplier, manifest_json("DLV/2008/07")), 400, "validation_error")
    assert list(Delivery.objects.values_list("reference", flat=True)) == ["DLV-2008.07_A"]
    page = head_office_client.get(reverse("inventory:delivery-list"))
    assert page.status_code == 200
    assert reverse("inventory:plan-detail", kwargs={"reference": "DLV-2008.07_A"}).encode() in page.content


@pytest.mark.parametrize("reference", ["DLV/1", "DLV</script>", "D" * 65])
def test_the_inbox_path_refuses_the_same_references(supplier, reference):
    # The inbox folder and the API share manifest_parse: one rule for both doors.
    with pytest.raises(ManifestInvalid) as exc:
        manifest_parse(content=manifest_json(reference), filename="m.json")
    assert any(str(p).startswith(REFERENCE_PROBLEM) for p in exc.value.problems)


# --- Hostile JSON: a 4xx envelope, never a 500, nothing written --------------------------

TODAY = "2008-07-18"
NESTED = 100_000
DIGITS = "9" * 5000


def raw(
    *,
    reference: str = '"DLV-1"',
    expected_on: str = f'"{TODAY}"',
    launch: str | None = None,
    line: str = '{"sku": "IP3G-0", "quantity": 1}',
) -> bytes:
    """A manifest's JSON text from JSON fragments as written (escapes stay escapes)."""
    launch_part = f', "launch": {launch}' if launch is not None else ""
    return (
        ('{"reference": ' + reference + ', "expected_on": ' + expected_on + launch_part).encode()
        + b', "lines": ['
        + line.encode()
        + b"]}"
    )


HOSTILE_BODIES = {
    # \u0000 as a JSON escape (the raw text holds no NUL byte), in every field it could reach.
    "nul-in-reference": raw(reference=r'"DLV\u0000X"'),
    "nul-in-sku": raw(line=r'{"sku": "IP3G\u00000", "quantity": 1}'),
    "nul-in-date": raw(expected_on=rf'"{TODAY}\u0000"'),
    "nul-in-launch": raw(launch=r'"iphone\u0000"'),
    "nul-in-quantity": raw(line=r'{"sku": "IP3G-0", "quantity": "1\u0000"}'),
    # A lone surrogate, escaped: no UTF-8 can hold it, so no database can store it.
    "lone-low-surrogate-in-reference": raw(reference=r'"\udc00"'),
    "lone-high-surrogate-in-sku": raw(line=r'{"sku": "\ud800", "quantity": 1}'),
    # The same surrogate as raw (invalid) UTF-8 bytes.
    "raw-surrogate-bytes": b'{"reference": "\xed\xb0\x80", "expected_on": "2008-07-18", "lines": []}',
    "nested-arrays": b"[" * NESTED,
    "nested-arrays-closed": b"[" * NESTED + b"]" * NESTED,
    "nested-in-lines": b'{"reference": "DLV-1", "expected_on": "2008-07-18", "lines": ' + b"[" * NESTED,
    "nested-objects": b'{"a":' * NESTED + b"1" + b"}" * NESTED,
    "quantity-of-5000-digits": raw(line='{"sku": "IP3G-0", "quantity": ' + DIGITS + "}"),
    "negative-quantity-of-5000-digits": raw(line='{"sku": "IP3G-0", "quantity": -' + DIGITS + "}"),
    # As a string it is not parsed as a number: Python refuses int() of 5,000 digits.
    "quantity-string-of-5000-digits": raw(line='{"sku": "IP3G-0", "quantity": "' + DIGITS + '"}'),
    "requested-quantity-of-5000-digits": raw(
        line='{"sku": "IP3G-0", "quantity": 1, "requested_quantity": ' + DIGITS + "}"
    ),
    "quantity-of-300-digits": raw(line='{"sku": "IP3G-0", "quantity": ' + "9" * 300 + "}"),
    "quantity-1e400": raw(line='{"sku": "IP3G-0", "quantity": 1e400}'),
}


def test_the_hostile_bodies_are_what_they_claim():
    # The escapes reach the parser as escapes, and a well-formed body parses.
    assert (
        b"\\u0000" in HOSTILE_BODIES["nul-in-reference"] and b"\x00" not in HOSTILE_BODIES["nul-in-reference"]
    )
    assert json.loads(raw())["lines"] == [{"sku": "IP3G-0", "quantity": 1}]
    assert json.loads(HOSTILE_BODIES["nul-in-date"])["expected_on"] == TODAY + "\x00"


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_json_is_a_validation_error_and_writes_nothing(supplier, name):
    response = post_raw(supplier, HOSTILE_BODIES[name])
    error = assert_envelope(response, 400, "validation_error")
    assert error["details"], error
    assert_nothing_written()


def test_a_csv_quantity_of_5000_digits_is_a_validation_error(supplier):
    body = f"reference,expected_on,sku,quantity\nDLV-1,{TODAY},IP3G-0,{DIGITS}\n".encode()
    error = assert_envelope(post_raw(supplier, body, "text/csv"), 400, "validation_error")
    assert error["details"]["line 2"] == [f"quantity '{DIGITS}' is not a whole number."]
    assert_nothing_written()


def test_after_hostile_bodies_a_good_manifest_is_still_announced(supplier):
    for body in HOSTILE_BODIES.values():
        assert post_raw(supplier, body).status_code == 400
    assert post_raw(supplier, manifest_json("DLV-OK")).status_code == 201
    assert list(Delivery.objects.values_list("reference", flat=True)) == ["DLV-OK"]


# --- References that reached the database by another door --------------------------------


def test_a_delivery_recorded_before_the_check_does_not_break_the_deliveries_page(head_office_client):
    # Announced before the fix (or typed in the admin): its addresses cannot be built.
    Delivery.objects.create(reference="DLV/1</script>", expected_on=timezone.localdate())
    Delivery.objects.create(reference="DLV-2", expected_on=timezone.localdate())
    page = head_office_client.get(reverse("inventory:delivery-list"))
    assert page.status_code == 200
    assert b"DLV/1&lt;/script&gt;" in page.content and b"DLV/1</script>" not in page.content
    assert reverse("inventory:plan-detail", kwargs={"reference": "DLV-2"}).encode() in page.content


def test_the_admin_refuses_a_reference_outside_the_safe_alphabet(client):
    admin_user = UserFactory(username="ops", is_staff=True, is_superuser=True)
    head_office_login(client, admin_user)
    add = reverse("admin:inventory_delivery_add")
    form = {
        "expected_on": "2008-07-18",
        "status": Delivery.Status.ANNOUNCED,
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    refused = client.post(add, {**form, "reference": "DLV/1"})
    assert refused.status_code == 200 and not Delivery.objects.exists()
    assert b"letters, digits" in refused.content
    assert client.post(add, {**form, "reference": "DLV-1"}).status_code == 302
    assert list(Delivery.objects.values_list("reference", flat=True)) == ["DLV-1"]
    # The deliveries page answers with what the admin let in.
    assert client.get(reverse("inventory:delivery-list")).status_code == 200
