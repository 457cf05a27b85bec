"""Starting a campaign in a real browser (Debian Chromium): the count comes first, and a
campaign with no recipients cannot start."""

import pytest
from playwright.sync_api import Page, expect

from customers.models import Campaign, Message
from customers.tests.conftest import order_make
from customers.tests.factories import CustomerFactory
from stores.models import StaffMembership
from stores.tests.factories import UserFactory
from stores.tests.test_staff_pages_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)


def choose(page: Page, launch) -> None:
    page.locator("#id_launch").select_option(launch.slug)
    page.locator("#id_kind").select_option("apology")
    page.locator("#id_audience").select_option("waitlisted")
    page.get_by_role("button", name="Count recipients…").click()


def test_a_campaign_with_no_recipients_cannot_start(page: Page, live_server, launch_with_sku):
    launch, _ = launch_with_sku
    StaffMembership.objects.create(user=UserFactory(username="ho"), role=StaffMembership.Role.HEAD_OFFICE)
    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/customers/campaigns/")
    choose(page, launch)
    expect(page.get_by_role("alert")).to_contain_text("Nobody is in the audience")
    expect(page.get_by_role("button", name="Start", exact=False).filter(has_text="email")).to_have_count(0)
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_a_campaign_shows_how_many_it_emails_before_it_starts(page: Page, live_server, launch_with_sku):
    launch, sku = launch_with_sku
    for number in (1, 2, 3):
        order_make(
            launch=launch, customer=CustomerFactory(), sku=sku, status="waitlisted", wait_number=number
        )
    StaffMembership.objects.create(user=UserFactory(username="ho"), role=StaffMembership.Role.HEAD_OFFICE)
    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/customers/campaigns/")
    choose(page, launch)
    expect(page.get_by_role("heading", level=1)).to_have_text("Email 3 customers?")
    assert not Campaign.objects.exists()
    page.get_by_role("button", name="Start: email 3 customers").click()
    expect(page.locator("#progress [data-total]")).to_have_text("3")
    assert Campaign.objects.get().messages.count() == 3
