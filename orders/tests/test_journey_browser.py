"""The customer's journey in a real browser (Playwright driving Debian's Chromium).

Register before the window, order in it, then watch the status page's queue position
change as stock arrives, without the page reloading: a marker set on `window` before the
change is still there after it, which a reload would have wiped.
"""

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.models import UpgradeRegistration
from customers.services.registration import eligibility_forget
from customers.tests.factories import CustomerFactory
from inventory.models import Delivery, Launch
from inventory.services import location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.catalogue import catalogue_clear
from stores.tests.factories import StoreFactory

SKU = "IP3G-8GB-BLACK"
# The live server shares two cores with the rest of the suite (and CI with other work):
# give each expectation room; a real regression still fails, only later.
expect.set_options(timeout=15_000)


@pytest.mark.browser
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_register_order_and_see_the_position_update_without_reloading(page: Page, live_server):
    now = timezone.now()
    sku = SKUFactory(code=SKU, name="iPhone 3G 8GB Black")
    launch = LaunchFactory(
        slug="iphone-3g-browser",
        name="iPhone 3G upgrade",
        opens_at=now + datetime.timedelta(days=1),
        closes_at=now + datetime.timedelta(days=8),
        skus=[sku],
    )
    StoreFactory(code="S001", name="Regent Street")
    earlier = [CustomerFactory(account_number=f"E{n:07d}") for n in (1, 2)]
    UpgradeRegistration.objects.bulk_create(
        [UpgradeRegistration(customer=c, launch=launch, preferred_sku=sku) for c in earlier]
    )
    anna = CustomerFactory(account_number="B0000001", postcode="EC1A 1BB", name="Anna Smith")
    for customer in [*earlier, anna]:  # the cache may remember a previous run's launch of this id
        eligibility_forget(launch_id=launch.pk, account_number=customer.account_number)
    Delivery.objects.create(reference="WK30", launch=launch, expected_on=datetime.date(2030, 7, 18))
    launch_url = f"{live_server.url}/upgrade/{launch.slug}/"

    # Before the window: register interest.
    page.goto(f"{live_server.url}/upgrade/")
    page.get_by_role("link", name="iPhone 3G upgrade").click()
    expect(page.get_by_role("heading", name="Register your interest")).to_be_visible()
    page.get_by_label("Account number").fill("b0000001")
    page.get_by_label("Postcode").fill("ec1a 1bb")
    page.get_by_label("Which model would you like?").select_option(SKU)
    page.get_by_role("button", name="Register my interest").click()
    expect(page.get_by_role("heading", name="You're registered, Anna")).to_be_visible()
    assert UpgradeRegistration.objects.filter(launch=launch, customer=anna, preferred_store=None).exists()

    # The window opens; two customers order before Anna and there is no stock yet.
    Launch.objects.filter(pk=launch.pk).update(opens_at=now - datetime.timedelta(minutes=1))
    catalogue_clear()
    for customer in earlier:
        order_admit(
            launch=launch.slug,
            customer=customer.account_number,
            sku=SKU,
            fulfilment="delivery",
            channel="online",
        )
    launch_allocate(launch_id=launch.pk)
    assert Order.objects.filter(status=Order.Status.WAITLISTED).count() == 2

    page.goto(launch_url)
    expect(page.locator("#availability")).to_contain_text("sold out online — you can still join the waitlist")
    page.get_by_label("Account number").fill("B0000001")
    page.get_by_label("Postcode").fill("EC1A 1BB")
    expect(page.get_by_label("Home delivery")).to_be_checked()
    # The availability panel follows the chosen pool before anything is submitted.
    page.get_by_label("Collect in store").check()
    page.get_by_label("Store to collect from").select_option("S001")
    expect(page.locator("#availability")).to_contain_text(
        "iPhone 3G 8GB Black is sold out for collection at Regent Street — you can still join the waitlist"
    )
    page.get_by_label("Home delivery").check()
    expect(page.locator("#availability")).to_contain_text("is sold out for home delivery")
    # The one action says what it does: nothing is left for this pool, so it joins the waitlist.
    expect(page.get_by_role("button", name="Place my order")).to_have_count(0)
    page.get_by_role("button", name="Join the waitlist").click()

    # The status page: honest about the sell-out, exact position, next delivery.
    expect(page).to_have_url(re.compile(r"/upgrade/orders/LD[A-Z0-9]{10}/$"))
    panel = page.locator("#status-panel")
    expect(panel).to_contain_text("Sold out for now")
    expect(panel).to_contain_text(
        "You are #3 in the queue for home delivery of iPhone 3G 8GB Black; no units left"
    )
    expect(panel).to_contain_text("next delivery is expected Thursday 18 July")
    page.evaluate("window.__marker = 1")

    # One unit arrives: the first waiting order gets it, and Anna moves up to #2.
    online = location_online_pool()
    stock_receive(location=online, sku=sku, quantity=1, reference="WK29-early")
    launch_allocate(launch_id=launch.pk)
    expect(panel).to_contain_text("You are #2 in the queue", timeout=10_000)
    assert page.evaluate("window.__marker") == 1

    # Two more: Anna's phone is reserved ("an", not "a"), and the panel keeps following
    # the order, since reserved is not the end of it.
    stock_receive(location=online, sku=sku, quantity=2, reference="WK30")
    launch_allocate(launch_id=launch.pk)
    expect(panel).to_contain_text("Your phone is reserved", timeout=10_000)
    expect(panel).to_contain_text("An iPhone 3G 8GB Black is reserved for you.")
    assert page.evaluate("window.__marker") == 1
    expect(page.locator("#status-panel")).to_have_attribute("hx-trigger", re.compile("every 2s"))
    expect(page.locator('#status-panel [data-step="reserved"]')).to_have_class("done")
    assert Order.objects.get(customer=anna).status == Order.Status.ALLOCATED


@pytest.mark.browser
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_stock_notice_link_orders_a_held_phone_and_a_second_click_is_told_honestly(page: Page, live_server):
    from customers.services.outbox import claim_token_make
    from orders.models import StockNotice
    from orders.services.notices import launch_free_units_serve

    catalogue_clear()
    sku = SKUFactory(code=SKU, name="iPhone 3G 8GB Black")
    launch = LaunchFactory(slug="iphone-3g-notice", name="iPhone 3G upgrade", skus=[sku])
    people = [CustomerFactory(account_number=f"K{n:07d}", name=f"Kim {n}") for n in (1, 2)]
    UpgradeRegistration.objects.bulk_create(
        [UpgradeRegistration(customer=c, launch=launch, preferred_sku=sku) for c in people]
    )
    for customer in people:
        eligibility_forget(launch_id=launch.pk, account_number=customer.account_number)
    stock_receive(location=location_online_pool(), sku=sku, quantity=1, reference="freed")
    launch_free_units_serve(launch_id=launch.pk)  # one unit held, one customer told (factor 1.5)
    notice = StockNotice.objects.select_related("window").get(launch=launch)
    link = f"{live_server.url}/upgrade/claim/{claim_token_make(notice_id=notice.pk, expires_at=notice.window.closes_at)}/"

    page.goto(link)
    expect(page.get_by_role("heading", name=re.compile("A phone is held for you"))).to_be_visible()
    page.get_by_role("button", name="Order this phone").click()
    expect(page.get_by_role("heading", name="Your phone is reserved")).to_be_visible()
    order = Order.objects.get(launch=launch)
    assert order.customer_id == notice.customer_id and order.status == Order.Status.ALLOCATED

    # The same link again (a second click from the email): an honest page, nothing ordered.
    response = page.goto(link)
    assert response is not None
    page.get_by_role("link", name=re.compile("Follow your order")).wait_for()
    assert response.status == 409
    assert Order.objects.filter(launch=launch).count() == 1
