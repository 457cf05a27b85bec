"""The launch overview in a real browser (Debian Chromium): its live figures change
without a reload while orders arrive, and the last-hour chart is redrawn with them."""

import datetime

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.tests.factories import CustomerFactory
from inventory.services import location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.services.admission import references_new
from stores.models import StaffMembership
from stores.tests.factories import UserFactory
from stores.tests.test_staff_pages_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=20_000)


def orders_arrive(launch, sku, pool, n: int) -> None:
    Order.objects.bulk_create(
        [
            Order(
                reference=reference,
                launch=launch,
                customer=CustomerFactory(),
                sku=sku,
                channel=Order.Channel.ONLINE,
                fulfilment=Order.Fulfilment.DELIVERY,
                pool=pool,
            )
            for reference in references_new(n)
        ]
    )


def test_the_overview_figures_change_without_a_reload_while_orders_arrive(page: Page, live_server):
    cache.clear()
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    launch = LaunchFactory(
        slug="iphone-3g", skus=[sku], opens_at=timezone.now() - datetime.timedelta(hours=1)
    )
    online = location_online_pool()
    stock_receive(location=online, sku=sku, quantity=5, reference="seed")
    StaffMembership.objects.create(user=UserFactory(username="ho"), role=StaffMembership.Role.HEAD_OFFICE)

    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/launches/iphone-3g/")
    per_minute = page.locator('#launch-pulse [data-field="orders_per_minute"]')
    waitlist = page.locator('#launch-pulse [data-field="waitlist"]')
    expect(per_minute).to_contain_text("0")
    expect(page.locator('#launch-pulse [data-field="units_left_online"]')).to_contain_text("5")
    page.evaluate("window.__marker = 'still here'")
    chart_points = "() => Chart.getChart('rate-chart').data.datasets[0].data.reduce((a, b) => a + b, 0)"
    page.wait_for_function("() => window.Chart && Chart.getChart('rate-chart')")
    assert page.evaluate(chart_points) == 0

    orders_arrive(launch, sku, online, 3)
    expect(per_minute).to_contain_text("3")
    expect(waitlist).to_contain_text("3")
    orders_arrive(launch, sku, online, 4)
    expect(per_minute).to_contain_text("7")
    expect(waitlist).to_contain_text("7")
    # Between a swap and its redraw the new canvas has no chart yet: wait for one that adds up.
    page.wait_for_function(
        "() => { const c = Chart.getChart('rate-chart');"
        " return !!c && c.data.datasets[0].data.reduce((a, b) => a + b, 0) === 7; }"
    )
    # The y axis counts orders: whole-number ticks only.
    ticks = page.evaluate(
        "() => { const c = Chart.getChart('rate-chart'); return c ? c.scales.y.ticks.map(t => t.value) : null; }"
    )
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert page.evaluate("window.__marker") == "still here"
