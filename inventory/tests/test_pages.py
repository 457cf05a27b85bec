"""Head-office plan and demand pages, store receiving and the supplier API: who may do
what, and that bad input gets a clear answer and changes nothing."""

import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import AllocationPlan, AllocationPlanLine, Delivery, Stock
from inventory.tests.world import add_orders, make_launch, make_stores, waitlist_everything
from stores.models import PartnerAPIKey, StaffMembership
from stores.tests.factories import PartnerFactory, StaffMembershipFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    launch, (sku,) = make_launch()
    s0, s1 = make_stores(2)
    add_orders(launch=launch, sku=sku, pool=s0, count=4)
    waitlist_everything(launch)
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, role=StaffMembership.Role.HEAD_OFFICE)
    staff0 = StaffMembershipFactory(store=s0.store, user__username="staff0").user
    staff1 = StaffMembershipFactory(store=s1.store, user__username="staff1").user
    return launch, sku, (s0, s1), head, staff0, staff1


@pytest.fixture
def supplier_key():
    partner = PartnerFactory(code="apple", kind="supplier")
    _, key = PartnerAPIKey.objects.create_key(
        name="manifests", partner=partner, scope=PartnerAPIKey.Scope.DELIVERIES
    )
    retailer = PartnerFactory(code="chain", kind="retailer")
    _, orders_key = PartnerAPIKey.objects.create_key(
        name="orders", partner=retailer, scope=PartnerAPIKey.Scope.ORDERS
    )
    return key, orders_key


def post_manifest(client, key, body, content_type="application/json"):
    return client.post(
        "/api/v1/deliveries/",
        data=body if isinstance(body, (str, bytes)) else json.dumps(body),
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Api-Key {key}" if key else "",
    )


def manifest(reference="DLV-API", quantity=8):
    return {
        "reference": reference,
        "expected_on": str(timezone.localdate()),
        "lines": [{"sku": "IP3G-0", "quantity": quantity, "requested_quantity": 20}],
    }


def test_supplier_api_announces_once_and_refuses_bad_manifests_with_the_envelope(client, world, supplier_key):
    key, orders_key = supplier_key
    response = post_manifest(client, key, manifest())
    assert response.status_code == 201
    assert response.json()["delivery"]["lines"] == [
        {"sku": "IP3G-0", "quantity": 8, "requested_quantity": 20}
    ]
    again = post_manifest(client, key, manifest(quantity=9))
    assert again.status_code == 200 and again.json()["created"] is False
    assert Delivery.objects.get().lines.get().quantity == 8

    bad = post_manifest(
        client,
        key,
        {
            "reference": "DLV-BAD",
            "expected_on": "2008-07-18",
            "lines": [{"sku": "IP3G-0", "quantity": -1}, {"sku": "NOPE", "quantity": "x"}],
        },
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == {
        "line 1": ["quantity -1 must be at least 1."],
        "line 2": ["Unknown SKU 'NOPE'.", "quantity 'x' is not a whole number."],
    }
    csv_body = f"reference,expected_on,sku,quantity\nDLV-CSV,{timezone.localdate()},IP3G-0,3\n"
    assert post_manifest(client, key, csv_body, "text/csv").status_code == 201
    assert post_manifest(client, key, b"\xff\xfe", "text/csv").json()["error"]["code"] == "validation_error"
    assert post_manifest(client, None, manifest("X")).json()["error"]["code"] == "not_authenticated"
    assert post_manifest(client, "nope.nope", manifest("X")).status_code == 401
    assert post_manifest(client, orders_key, manifest("X")).json()["error"]["code"] == "permission_denied"
    huge = b'{"reference": "BIG", "lines": [' + b" " * (6 * 1024 * 1024) + b"]}"
    too_big = post_manifest(client, key, huge)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    assert set(Delivery.objects.values_list("reference", flat=True)) == {"DLV-API", "DLV-CSV"}


def test_plan_page_is_head_office_only_and_saves_every_figure_at_once_or_none(
    client, world, supplier_key, django_capture_on_commit_callbacks
):
    launch, sku, (s0, s1), head, staff0, staff1 = world
    post_manifest(client, supplier_key[0], manifest(quantity=10))
    url = reverse("inventory:plan-detail", kwargs={"reference": "DLV-API"})
    save = reverse("inventory:plan-save", kwargs={"reference": "DLV-API"})
    client.force_login(staff0)
    assert client.get(url).status_code == 403
    head_office_login(client, head)
    before = client.get(url)  # a GET never writes: the plan is suggested on request
    assert before.status_code == 200 and b"Suggest a plan" in before.content
    assert not AllocationPlan.objects.exists()
    client.post(reverse("inventory:plan-suggest", kwargs={"reference": "DLV-API"}))
    page = client.get(url)
    assert page.status_code == 200
    assert f'id="remaining-{sku.pk}"'.encode() in page.content and b'data-remaining="0"' in page.content
    line = AllocationPlanLine.objects.get(location=s0)
    other = AllocationPlanLine.objects.get(location=s1)
    # Four wait at S000, six more follow nobody's registration: equal shares of 2 for the three pools.
    assert line.quantity == 6 and line.demand_waitlisted == 4
    assert b"suggested from demand" in page.content  # the suggestion is one history entry

    # One bad cell refuses the whole save: nothing changes, the error is on that cell,
    # and the units left are counted from what was typed.
    refused = client.post(save, {f"line-{line.pk}": "2", f"line-{other.pk}": "lots"})
    assert refused.status_code == 400
    cell = re.search(rf'<td class="num has-error">\s*<input[^>]*name="line-{other.pk}"[^>]*>', refused.text)
    assert cell and 'aria-invalid="true"' in cell.group(0) and 'value="lots"' in cell.group(0)
    assert re.search(rf'id="error-{other.pk}">Enter a whole number', refused.text)
    assert "Fix the marked figure" in refused.text and "Nothing was saved" in refused.text
    assert AllocationPlanLine.objects.get(pk=line.pk).quantity == 6

    client.post(save, {f"line-{line.pk}": "8"})
    approve = client.post(reverse("inventory:plan-approve", kwargs={"reference": "DLV-API"}), follow=True)
    assert b"more than was delivered" in approve.content
    saved = client.post(save, {f"line-{line.pk}": "2", f"line-{other.pk}": "6"}, follow=True)
    assert b"Saved: 2 figures changed." in saved.content and b"Saved " in saved.content
    assert b'data-remaining="0"' in saved.content  # online's 2, S000's 2, S001's 6
    client.post(save, {f"line-{line.pk}": "6", f"line-{other.pk}": "2"})
    client.post(reverse("inventory:plan-approve", kwargs={"reference": "DLV-API"}))
    assert AllocationPlan.objects.get().status == "approved"
    history = " ".join(client.get(url).content.decode().split())
    assert "head set IP3G-0 at S000 to 2" in history
    late = client.post(save, {f"line-{line.pk}": "1"}, follow=True)
    assert b"can no longer change" in late.content

    # Intake now asks first: the page says what moves, and a POST without the
    # confirmation changes nothing.
    intake = reverse("inventory:delivery-intake", kwargs={"reference": "DLV-API"})
    listing = client.get(reverse("inventory:delivery-list")).content.decode()
    assert f'href="{intake}"' in listing
    asked = client.get(intake).content.decode()
    assert "cannot be undone" in asked and "apply the approved plan" in asked
    with django_capture_on_commit_callbacks(execute=True):
        unconfirmed = client.post(intake)
    assert unconfirmed.status_code == 200 and "cannot be undone" in unconfirmed.content.decode()
    assert Delivery.objects.get().status == "announced"
    # Confirmed (eager Celery in tests): received, distributed, S000's share in transit.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(intake, {"confirm": "yes"})
    assert Delivery.objects.get().status == "distributed"
    assert Stock.objects.get(location=s0, sku=sku).in_transit == 6
    listing = client.get(reverse("inventory:delivery-list"))
    assert b"DLV-API" in listing.content


def test_store_receiving_is_for_that_stores_staff_and_serves_collect_orders(
    client, world, supplier_key, django_capture_on_commit_callbacks
):
    launch, sku, (s0, s1), head, staff0, staff1 = world
    launch.auto_apply_plans = True
    launch.save()
    post_manifest(client, supplier_key[0], manifest(quantity=6))
    head_office_login(client, head)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("inventory:delivery-intake", kwargs={"reference": "DLV-API"}), {"confirm": "yes"})
    url = reverse("inventory:store-receiving", kwargs={"code": s0.code})
    client.force_login(staff1)
    assert client.get(url).status_code == 403
    client.force_login(staff0)
    page = client.get(url)
    assert b"DLV-API" in page.content and b"Confirm received" in page.content
    nonsense = client.post(url, {"delivery": "DLV-API", f"received-{sku.pk}": "lots"}, follow=True)
    assert b"whole numbers" in nonsense.content
    # S000 was sent 5 (its 4 waiting orders, and 1 of the 2 spare units shared equally).
    assert Stock.objects.get(location=s0, sku=sku).in_transit == 5
    no_reason = client.post(url, {"delivery": "DLV-API", f"received-{sku.pk}": "4"}, follow=True)
    assert b"Say why" in no_reason.content
    assert Stock.objects.get(location=s0, sku=sku).on_hand == 0
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url, {"delivery": "DLV-API", f"received-{sku.pk}": "4", "reason": "one lost"}, follow=True
        )
    assert b"received." in done.content
    stock = Stock.objects.get(location=s0, sku=sku)
    # Four arrived and four collect orders waited: all four are held for them.
    assert (stock.on_hand, stock.reserved, stock.in_transit) == (4, 4, 0)
    assert b"Short by 1: one lost" in client.get(url).content


def test_demand_page_and_csv(client, world, supplier_key):
    launch, sku, (s0, s1), head, staff0, staff1 = world
    post_manifest(client, supplier_key[0], manifest(quantity=10))
    url = reverse("inventory:demand", kwargs={"slug": launch.slug})
    client.force_login(staff0)
    assert client.get(url).status_code == 403
    head_office_login(client, head)
    page = client.get(url)
    assert page.status_code == 200 and b"demand-chart" in page.content
    csv_text = client.get(url + "?format=csv").content.decode()
    lines = csv_text.strip().splitlines()
    assert (
        lines[0]
        == "location,store,sku,registered,ordered,allocated,sold,waiting,delivered,available,shortfall,"
        "registered_without_order"
    )
    assert "S000,Store S000,IP3G-0,0,4,0,0,4,0,0,4,0" in lines
    assert client.get(reverse("inventory:demand", kwargs={"slug": "nope"})).status_code == 404
