"""Staff pages in a real browser (Debian Chromium): live panels change without a reload.

Store staff sell to a walk-in and see their stock fall; head office watches a campaign's
progress as the sender works through it (the plan editor's grid has its own browser tests
in inventory/tests/test_plan_grid_browser.py). A JavaScript marker
set on the page survives each check, which a reload would wipe.
"""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from customers.models import Campaign, Message
from customers.services.outbox import outbox_send_batch
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from inventory.tests.world import add_orders, waitlist_everything
from orders.models import Order
from orders.services.campaigns import launch_campaign_start as campaign_start
from stores.models import StaffMembership
from stores.selectors import user_is_head_office
from stores.services.second_factor import recovery_codes_issue
from stores.tests.factories import StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)
PASSWORD = "correct-horse-battery"


def sign_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    user = User.objects.get(username=username)
    codes = recovery_codes_issue(user=user) if user_is_head_office(user=user) else []
    page.get_by_role("button", name="Sign in").click()
    if codes:  # head office's second step: one of its recovery codes
        page.wait_for_url(re.compile(r"/accounts/two-factor/"))
        page.get_by_label("Code").fill(codes[0])
        page.get_by_role("button", name="Continue").click()


def test_store_staff_sell_to_a_walk_in_and_the_stock_panel_follows(page: Page, live_server):
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    LaunchFactory(slug="iphone-3g", skus=[sku])
    store = StoreFactory(code="S001", name="Regent Street")
    stock_receive(location=location_for_store(store=store), sku=sku, quantity=3, reference="seed")
    StaffMembership.objects.create(user=UserFactory(username="staff-s001"), store=store)

    sign_in(page, live_server, "staff-s001")
    expect(page).to_have_url(f"{live_server.url}/stores/S001/")
    on_hand = page.locator('tr[data-sku="IP3G-8GB-BLACK"] [data-field="on_hand"]')
    expect(on_hand).to_have_text("3")
    page.evaluate("window.__marker = 'still here'")

    page.locator("#issue-ticket").click()
    # As staff do: the ticket's number is on screen before the sale (a second tap at once
    # would replace the first request, hx-sync being "replace").
    expect(page.locator('[data-field="tickets_waiting"]')).to_have_text("1")
    page.locator("#serve-IP3G-8GB-BLACK").click()
    expect(on_hand).to_have_text("2")
    # Stock that arrives elsewhere shows on the next two-second refresh, untouched by staff.
    stock_receive(location=location_for_store(store=store), sku=sku, quantity=5, reference="late")
    expect(on_hand).to_have_text("7")
    assert page.evaluate("window.__marker") == "still here"


def test_head_office_watches_a_campaign_go_out_without_reloading(page: Page, live_server, settings, request):
    from config.celery import app

    # The test plays the worker, batch by batch: no task may send the campaign in process.
    # Celery keeps its own copy of the switch, read from the settings when first touched.
    # (Read before overriding the setting, so a first read does not take the override.)
    was = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    request.addfinalizer(lambda: setattr(app.conf, "task_always_eager", was))
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    launch = LaunchFactory(slug="iphone-3g", skus=[sku])
    orders = add_orders(launch=launch, sku=sku, pool=location_online_pool(), count=6)
    waitlist_everything(launch)
    assert Order.objects.filter(status="waitlisted").count() == len(orders)
    outbox_send_batch(limit=100)  # the allocator's own "order received" mail goes first
    campaign = campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    StaffMembership.objects.create(user=UserFactory(username="ho"), role=StaffMembership.Role.HEAD_OFFICE)

    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/customers/campaigns/{campaign.pk}/")
    sent = page.locator("#progress [data-sent]")
    expect(sent).to_have_text("0")
    page.evaluate("window.__marker = 'still here'")

    outbox_send_batch(limit=4)  # the real sender, to the test's mail backend
    expect(sent).to_have_text("4")
    outbox_send_batch(limit=4)
    expect(sent).to_have_text("6")
    expect(page.locator("#progress")).to_contain_text("Finished.")
    assert page.evaluate("window.__marker") == "still here"
