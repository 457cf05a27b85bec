"""Head office on launch morning, in a real browser (Debian Chromium): a customer phones
with a reference; the order is found on the orders page, cancelled from its own page, and
the unit it held goes to the next waiting order (issue 11, "What it must show")."""

import re

import pytest
from playwright.sync_api import Page, expect

from customers.models import Message
from inventory.services import location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from inventory.tests.world import add_orders
from orders.models import Order
from orders.services.allocation import launch_allocate
from stores.models import StaffMembership
from stores.tests.factories import UserFactory
from stores.tests.test_staff_pages_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)


def test_an_order_found_by_reference_is_cancelled_from_its_page_and_the_next_waiting_order_is_served(
    page: Page, live_server
):
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    launch = LaunchFactory(slug="iphone-3g", skus=[sku])
    online = location_online_pool()
    stock_receive(location=online, sku=sku, quantity=1, reference="seed")
    holder, nxt, after = add_orders(launch=launch, sku=sku, pool=online, count=3)
    launch_allocate(launch_id=launch.pk)
    assert list(Order.objects.order_by("sequence").values_list("status", flat=True)) == [
        "allocated",
        "waitlisted",
        "waitlisted",
    ]
    StaffMembership.objects.create(
        user=UserFactory(username="head"), store=None, role=StaffMembership.Role.HEAD_OFFICE
    )

    sign_in(page, live_server, "head")
    page.goto(f"{live_server.url}/office/orders/")
    page.get_by_label("Reference or account number").fill(holder.reference.lower())
    page.get_by_role("button", name="Find orders").click()
    results = page.locator("#order-results")
    expect(results.locator("a.reference")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=" + holder.reference.lower()))  # htmx pushed it
    results.get_by_role("link", name=holder.reference).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(holder.reference)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Allocated")
    cancel = page.get_by_role("button", name=f"Cancel order {holder.reference}")
    page.get_by_label("Reason").fill("Customer phoned: ordered twice by mistake")
    cancel.click()
    # No confirmation ticked: refused, with the error where it belongs, nothing changed.
    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    assert Order.objects.get(pk=holder.pk).status == "allocated"

    page.get_by_label("Yes, cancel this order").check()
    page.get_by_role("button", name=f"Cancel order {holder.reference}").click()
    expect(page.locator(".messages")).to_contain_text(f"Order {holder.reference} is cancelled")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cancelled")
    expect(page.locator(".timeline")).to_contain_text("Customer phoned: ordered twice by mistake")
    expect(page.locator(".timeline")).to_contain_text("Email: Order cancelled")

    # The next waiting order got the unit (the allocator ran on the cancellation's commit).
    assert Order.objects.get(pk=nxt.pk).status == "allocated"
    assert Order.objects.get(pk=after.pk).status == "waitlisted"
    assert Message.objects.filter(kind="order_cancelled", order_reference=holder.reference).count() == 1
    page.goto(f"{live_server.url}/office/orders/{nxt.reference}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Allocated")
    page.goto(f"{live_server.url}/office/orders/{after.reference}/")
    expect(page.locator("[data-position]")).to_have_text("1")
