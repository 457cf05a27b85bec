"""The allocation plan's grid in a real browser (Debian Chromium).

Each SKU's "units left to give" follows typing with no request to the server, a figure
that is not a whole number shows its error on its own cell, and the total never shows a
number that the screen's figures do not add up to. Saving is one button; until it is
pressed the page says the changes are not saved and approval waits.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from inventory.manifests import manifest_parse
from inventory.models import AllocationPlan
from inventory.services import delivery_announce, location_online_pool
from inventory.tests.factories import LaunchFactory, SKUFactory
from inventory.tests.world import add_orders, make_stores, waitlist_everything
from orders.services.intake import delivery_intake
from stores.models import StaffMembership
from stores.tests.factories import UserFactory
from stores.tests.test_staff_pages_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)


@pytest.fixture
def plan_to_edit():
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g", skus=[black, white])
    s0, _ = make_stores(2)
    add_orders(launch=launch, sku=black, pool=location_online_pool(), count=6)
    add_orders(launch=launch, sku=black, pool=s0, count=3, start=6)
    add_orders(launch=launch, sku=white, pool=s0, count=2, start=9)
    waitlist_everything(launch)
    today = timezone.localdate()
    body = (
        "reference,expected_on,sku,quantity,launch\n"
        f"DLV-B,{today},{black.code},9,iphone-3g\nDLV-B,{today},{white.code},4,iphone-3g\n"
    )
    delivery = delivery_announce(manifest=manifest_parse(content=body.encode()), source="test")[0]
    delivery_intake(delivery_id=delivery.pk)  # received, plan suggested, waiting for approval
    plan = AllocationPlan.objects.get(delivery=delivery)
    StaffMembership.objects.create(user=UserFactory(username="ho"), role=StaffMembership.Role.HEAD_OFFICE)
    return plan, black, white


def test_units_left_follow_typing_and_a_bad_figure_shows_its_error_on_its_cell(
    page: Page, live_server, plan_to_edit
):
    plan, black, white = plan_to_edit
    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/stock/deliveries/DLV-B/plan/")
    black_left = page.locator(f"#remaining-{black.pk}")
    white_left = page.locator(f"#remaining-{white.pk}")
    expect(black_left).to_have_text("0 left")
    expect(white_left).to_have_text("0 left")
    state = page.locator("#plan-save-state")
    expect(state).to_have_attribute("data-state", "saved")

    online = plan.lines.get(location=location_online_pool(), sku=black)
    cell = page.locator(f'input[name="line-{online.pk}"]')
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/plan/" in r.url else None)

    # Typed a key at a time, as a person does: the total is right after every keystroke.
    cell.fill("")
    expect(black_left).to_have_text("Fix the marked figure")  # an empty cell is no number
    expect(page.locator(f"#error-{online.pk}")).to_have_text("Enter a whole number of units, 0 or more.")
    cell.press_sequentially("1")
    expect(black_left).to_have_text(f"{online.quantity - 1} left")
    expect(page.locator(f"#error-{online.pk}")).to_have_text("")
    cell.press_sequentially("2")
    expect(black_left).to_have_text(f"{12 - online.quantity} too many")
    expect(white_left).to_have_text("0 left")  # another SKU's total is not touched
    expect(state).to_have_attribute("data-state", "unsaved")
    expect(page.locator("#plan-approve-button")).to_be_disabled()

    cell.press_sequentially("x")  # "12x": not a whole number
    expect(cell).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#error-{online.pk}")).to_be_visible()
    expect(page.locator(f"#error-{online.pk}")).to_have_text("Enter a whole number of units, 0 or more.")
    expect(black_left).to_have_text("Fix the marked figure")  # never the stale "too many"
    cell.press("Backspace")
    expect(black_left).to_have_text(f"{12 - online.quantity} too many")
    assert requests == []  # all of it without the server: nothing is saved while typing
    online.refresh_from_db()
    assert online.quantity != 12


def test_one_save_keeps_every_figure_and_says_so(page: Page, live_server, plan_to_edit):
    plan, black, _ = plan_to_edit
    sign_in(page, live_server, "ho")
    page.goto(f"{live_server.url}/office/stock/deliveries/DLV-B/plan/")
    online = plan.lines.get(location=location_online_pool(), sku=black)
    store = (
        plan.lines.exclude(location=location_online_pool()).filter(sku=black).order_by("location__code")[0]
    )
    page.locator(f'input[name="line-{online.pk}"]').fill(str(online.quantity - 1))
    page.locator(f'input[name="line-{store.pk}"]').fill(str(store.quantity + 1))
    expect(page.locator(f"#remaining-{black.pk}")).to_have_text("0 left")
    page.locator("#plan-save").click()
    expect(page.get_by_text("Saved: 2 figures changed.")).to_be_visible()
    expect(page.locator("#plan-save-state")).to_contain_text("Saved ")
    expect(page.locator("#plan-save-state")).to_contain_text("by ho")
    expect(page.locator("#plan-approve-button")).to_be_enabled()
    online.refresh_from_db()
    store.refresh_from_db()
    assert (online.quantity, store.quantity) == (online.suggested_quantity - 1, store.suggested_quantity + 1)
