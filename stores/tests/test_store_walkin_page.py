"""The store's live page as its staff use it: walk-in tickets, selling one unit per
ticket, handing over click-and-collect orders, deliveries to receive, and the navigation
each role sees. Through the test client, on the real services and database."""

import datetime
import re

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from customers.tests.factories import CustomerFactory
from inventory.models import AllocationPlan, AllocationPlanLine, Delivery, Stock, StockMovement
from inventory.services import StockChange, location_for_store, stock_apply, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order, PoolState, Ticket
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, StoreFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


@pytest.fixture
def shop():
    """An open launch with two SKUs; store S101 holds 3 black and 0 white; S102 is another store."""
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g", skus=[black, white])
    store, other = StoreFactory(code="S101"), StoreFactory(code="S102")
    location = location_for_store(store=store)
    location_for_store(store=other)
    stock_receive(location=location, sku=black, quantity=3, reference="seed")
    staff = StaffMembershipFactory(store=store).user
    other_staff = StaffMembershipFactory(store=other).user

    class Shop:
        pass

    shop = Shop()
    shop.__dict__.update(
        launch=launch,
        black=black,
        white=white,
        store=store,
        other=other,
        location=location,
        staff=staff,
        other_staff=other_staff,
    )
    return shop


def url(name: str, store) -> str:
    return reverse(name, kwargs={"code": store.code})


def field(html: str, name: str) -> str:
    return re.search(rf'data-field="{name}">\s*([^<]*?)\s*<', html).group(1)


def stock(shop, sku) -> Stock:
    return Stock.objects.get(location=shop.location, sku=sku)


def ledger_matches_levels(location, sku) -> bool:
    row = Stock.objects.get(location=location, sku=sku)
    sums = StockMovement.objects.filter(location=location, sku=sku).aggregate(
        o=Sum("on_hand_delta"), r=Sum("reserved_delta"), t=Sum("in_transit_delta")
    )
    return (row.on_hand, row.reserved, row.in_transit) == (sums["o"] or 0, sums["r"] or 0, sums["t"] or 0)


def collect_order(shop, *, status: str, sku=None, store=None, reference: str = "") -> Order:
    store = store or shop.store
    customer = CustomerFactory()
    pool = location_for_store(store=store)
    sku = sku or shop.black
    wait_number = None
    if status == Order.Status.WAITLISTED:
        # As the allocator would: the pool's waitlist bookkeeping counts the order, and the
        # store page reads that count rather than the orders themselves.
        state, _ = PoolState.objects.get_or_create(launch=shop.launch, sku=sku, pool=pool)
        state.waitlisted_total += 1
        state.waiting += 1
        state.save()
        wait_number = state.waitlisted_total
    return Order.objects.create(
        reference=reference or f"R{Order.objects.count() + 1:07d}",
        launch=shop.launch,
        customer=customer,
        sku=sku,
        channel=Order.Channel.ONLINE,
        fulfilment=Order.Fulfilment.COLLECT,
        store=store,
        pool=pool,
        status=status,
        wait_number=wait_number,
        collect_by=timezone.now() + datetime.timedelta(days=3),
    )


def test_walk_in_flow_issues_tickets_and_sells_exactly_one_unit_per_serve(client, shop):
    client.force_login(shop.staff)

    first = client.post(url("store-ticket-issue", shop.store), headers=HX)
    assert first.status_code == 200
    # htmx gets the panel and the out-of-band notice, never the whole page.
    assert "<html" not in first.text
    assert first.text.lstrip().startswith('<section id="live-panel"')
    assert (
        'id="store-notice" class="notice-area" role="status" aria-live="polite" hx-swap-oob="true"'
        in first.text
    )
    assert "Ticket #1 issued" in first.text
    client.post(url("store-ticket-issue", shop.store), headers=HX)
    assert list(Ticket.objects.order_by("number").values_list("number", "status")) == [
        (1, "waiting"),
        (2, "waiting"),
    ]

    sold = client.post(url("store-serve-next", shop.store), {"sku": "IP3G-8GB-BLACK"}, headers=HX)
    assert sold.status_code == 200
    assert "Now serving #1: one IP3G-8GB-BLACK sold." in sold.text
    assert field(sold.text, "now_serving") == "#1"
    assert field(sold.text, "next_up") == "#2"
    assert field(sold.text, "tickets_waiting") == "1"
    black_row = re.search(r'<tr data-sku="IP3G-8GB-BLACK"[^>]*>(.*?)</tr>', sold.text, re.S).group(1)
    assert field(black_row, "on_hand") == "2"

    assert stock(shop, shop.black).on_hand == 2
    sale = StockMovement.objects.get(kind=StockMovement.Kind.SALE)
    assert (sale.location_id, sale.sku_id, sale.on_hand_delta, sale.reserved_delta) == (
        shop.location.pk,
        shop.black.pk,
        -1,
        0,
    )
    assert sale.reference == "ticket:S101-1"
    assert sale.created_by == shop.staff
    ticket = Ticket.objects.get(number=1)
    assert (ticket.status, ticket.sku, ticket.served_by) == (Ticket.Status.SERVED, shop.black, shop.staff)
    assert Ticket.objects.get(number=2).status == Ticket.Status.WAITING
    assert ledger_matches_levels(shop.location, shop.black)


def test_serve_next_with_none_available_says_so_and_changes_nothing(client, shop):
    client.force_login(shop.staff)
    client.post(url("store-ticket-issue", shop.store), headers=HX)
    movements = StockMovement.objects.count()

    response = client.post(url("store-serve-next", shop.store), {"sku": "IP3G-16GB-WHITE"}, headers=HX)

    assert response.status_code == 200
    assert 'data-notice="error"' in response.text
    assert "Not sold: No IP3G-16GB-WHITE left to sell at S101." in response.text
    assert Ticket.objects.get().status == Ticket.Status.WAITING
    assert StockMovement.objects.count() == movements
    assert field(response.text, "tickets_waiting") == "1"


def test_serve_next_with_nobody_waiting_sells_nothing(client, shop):
    client.force_login(shop.staff)
    response = client.post(url("store-serve-next", shop.store), {"sku": "IP3G-8GB-BLACK"}, headers=HX)
    assert response.status_code == 200
    assert "Nobody is waiting: issue a ticket first." in response.text
    assert stock(shop, shop.black).on_hand == 3
    assert not StockMovement.objects.filter(kind=StockMovement.Kind.SALE).exists()


def test_walk_in_sale_is_refused_while_collect_orders_wait_for_the_sku(client, shop):
    collect_order(shop, status=Order.Status.QUEUED)
    collect_order(shop, status=Order.Status.WAITLISTED)
    client.force_login(shop.staff)
    client.post(url("store-ticket-issue", shop.store), headers=HX)

    page = client.get(url("store-detail", shop.store)).text
    refused = re.search(r'data-sell="IP3G-8GB-BLACK"[^>]*>(.*?)</li>', page, re.S).group(1)
    assert re.search(r"Walk-in sales of [^<]+ are paused: 2 click-and-collect orders still wait", refused)
    assert "Held for collect" in refused
    assert 'id="serve-IP3G-8GB-BLACK"' not in page  # no button for a sale the service refuses
    white = re.search(r'data-sell="IP3G-16GB-WHITE"[^>]*>(.*?)</li>', page, re.S).group(1)
    assert "paused" not in white

    response = client.post(url("store-serve-next", shop.store), {"sku": "IP3G-8GB-BLACK"}, headers=HX)
    assert "owed to 2 waiting click-and-collect order(s)" in response.text
    assert Ticket.objects.get().status == Ticket.Status.WAITING
    assert stock(shop, shop.black).on_hand == 3


def test_without_htmx_actions_redirect_back_with_a_message(client, shop):
    client.force_login(shop.staff)
    response = client.post(url("store-ticket-issue", shop.store))
    assert response.status_code == 302
    assert response.url == url("store-detail", shop.store)
    page = client.get(response.url).text
    assert "Ticket #1 issued" in page
    assert "<html" in page

    response = client.post(url("store-serve-next", shop.store), {"sku": "IP3G-8GB-BLACK"}, follow=True)
    assert response.redirect_chain[-1][0] == url("store-detail", shop.store)
    assert "Now serving #1" in response.text
    assert stock(shop, shop.black).on_hand == 2


def test_staff_of_another_store_get_403_and_change_nothing(client, shop):
    client.force_login(shop.other_staff)
    assert client.get(url("store-detail", shop.store)).status_code == 403
    assert client.get(url("store-detail", shop.store), headers=HX).status_code == 403
    order = collect_order(shop, status=Order.Status.ALLOCATED)
    for name, data in [
        ("store-ticket-issue", {}),
        ("store-serve-next", {"sku": "IP3G-8GB-BLACK"}),
        ("store-order-collect", {"order": order.reference}),
    ]:
        assert client.post(url(name, shop.store), data, headers=HX).status_code == 403
        assert client.post(url(name, shop.store), data).status_code == 403
    assert not Ticket.objects.exists()
    assert stock(shop, shop.black).on_hand == 3
    order.refresh_from_db()
    assert order.status == Order.Status.ALLOCATED


def test_bad_input_is_a_friendly_message_never_a_500(client, shop):
    client.force_login(shop.staff)
    client.post(url("store-ticket-issue", shop.store), headers=HX)
    for data in [{}, {"sku": ""}, {"sku": "NOT-A-SKU"}, {"sku": "x" * 5000}]:
        response = client.post(url("store-serve-next", shop.store), data, headers=HX)
        assert response.status_code == 200
        assert "Choose a model of this launch to sell." in response.text
    # NUL never reaches a view: config.inputs.InputGuard answers 400 first.
    assert client.post(url("store-serve-next", shop.store), {"sku": "\x00"}, headers=HX).status_code == 400
    for data in [{}, {"order": ""}, {"order": "NOSUCH"}, {"order": "y" * 5000}]:
        response = client.post(url("store-order-collect", shop.store), data, headers=HX)
        assert response.status_code == 200
        assert 'data-notice="error"' in response.text
    for name in ["store-ticket-issue", "store-serve-next", "store-order-collect"]:
        assert client.get(url(name, shop.store)).status_code == 405
    assert Ticket.objects.get().status == Ticket.Status.WAITING
    assert stock(shop, shop.black).on_hand == 3


def test_collected_action_hands_the_held_unit_over(client, shop):
    # The allocator's reservation, as it would leave it: one unit held for the order.
    order = collect_order(shop, status=Order.Status.ALLOCATED, reference="ABCD2345")
    stock_apply(
        changes=[
            StockChange(
                location=shop.location, sku=shop.black, kind=StockMovement.Kind.ALLOCATION, reserved_delta=1
            )
        ]
    )
    client.force_login(shop.staff)
    page = client.get(url("store-detail", shop.store)).text
    assert 'data-order="ABCD2345"' in page
    assert field(page, "collect_ready") == "1"

    response = client.post(url("store-order-collect", shop.store), {"order": "abcd2345 "}, headers=HX)

    assert response.status_code == 200
    assert f"Order ABCD2345 collected by {order.customer.name}" in response.text
    # The ready list is outside the panel: the hand-over tells it to reload.
    assert response["HX-Trigger"] == "collect-changed"
    assert "data-order=" not in client.get(url("store-collect-list", shop.store), headers=HX).text
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLED
    row = stock(shop, shop.black)
    assert (row.on_hand, row.reserved) == (2, 0)
    assert StockMovement.objects.filter(kind=StockMovement.Kind.COLLECTION, reference="ABCD2345").count() == 1
    assert ledger_matches_levels(shop.location, shop.black)

    # Twice is refused politely: the order is no longer held.
    again = client.post(url("store-order-collect", shop.store), {"order": "ABCD2345"}, headers=HX)
    assert "Order ABCD2345 is fulfilled, not ready to collect." in again.text
    assert "HX-Trigger" not in again
    assert stock(shop, shop.black).on_hand == 2


def test_collect_refuses_orders_not_held_at_this_store(client, shop):
    queued = collect_order(shop, status=Order.Status.QUEUED, reference="QUEUED22")
    elsewhere = collect_order(shop, status=Order.Status.ALLOCATED, store=shop.other, reference="OTHER222")
    client.force_login(shop.staff)

    response = client.post(url("store-order-collect", shop.store), {"order": "OTHER222"}, headers=HX)
    assert "No click-and-collect order OTHER222 is held at this store." in response.text
    response = client.post(url("store-order-collect", shop.store), {"order": "QUEUED22"}, headers=HX)
    assert "Order QUEUED22 is queued, not ready to collect." in response.text

    for order, status in [(queued, Order.Status.QUEUED), (elsewhere, Order.Status.ALLOCATED)]:
        order.refresh_from_db()
        assert order.status == status
    assert not StockMovement.objects.filter(kind=StockMovement.Kind.COLLECTION).exists()


def test_incoming_delivery_is_listed_until_the_store_receives_it(client, shop):
    delivery = Delivery.objects.create(reference="WK28", expected_on=datetime.date(2008, 7, 11))
    plan = AllocationPlan.objects.create(delivery=delivery, status=AllocationPlan.Status.APPLIED)
    AllocationPlanLine.objects.create(plan=plan, sku=shop.black, location=shop.location, quantity=4)
    AllocationPlanLine.objects.create(plan=plan, sku=shop.white, location=shop.location, quantity=2)
    other_delivery = Delivery.objects.create(reference="WK29", expected_on=datetime.date(2008, 7, 18))
    other_plan = AllocationPlan.objects.create(delivery=other_delivery, status=AllocationPlan.Status.APPLIED)
    AllocationPlanLine.objects.create(
        plan=other_plan, sku=shop.black, location=location_for_store(store=shop.other), quantity=5
    )
    client.force_login(shop.staff)

    page = client.get(url("store-detail", shop.store)).text
    item = re.search(r'data-delivery="WK28">(.*?)</li>', page, re.S).group(1)
    assert "6 units on the way" in item
    assert url("inventory:store-receiving", shop.store) in item
    assert "WK29" not in page  # sent to another store

    # The two-second panel leaves deliveries out; their own fragment refreshes every minute.
    assert "WK28" not in client.get(url("store-detail", shop.store), headers=HX).text
    fragment = client.get(url("store-deliveries", shop.store), headers=HX).text
    assert (
        fragment.lstrip().startswith('<section id="store-deliveries"') and 'data-delivery="WK28"' in fragment
    )
    assert 'hx-trigger="every 60s" data-poll-visible-only' in fragment
    assert client.get(url("store-deliveries", shop.store)).url == url("store-detail", shop.store)

    StockMovement.objects.create(
        location=shop.location, sku=shop.black, kind=StockMovement.Kind.STORE_RECEIPT, reference="WK28"
    )
    assert "WK28" not in client.get(url("store-deliveries", shop.store), headers=HX).text
    assert "WK28" not in client.get(url("store-detail", shop.store)).text


def test_poll_is_the_partial_and_its_queries_do_not_grow_with_the_queue(
    client, shop, django_assert_max_num_queries
):
    client.force_login(shop.staff)
    client.get(url("store-detail", shop.store), headers=HX)  # warm the session and content types
    with django_assert_max_num_queries(16) as small:
        fragment = client.get(url("store-detail", shop.store), headers=HX)
        queries_before = len(small)
    assert "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<section id="live-panel"')
    assert 'hx-trigger="every 2s" data-poll-visible-only' in fragment.text

    size_before = len(fragment.content)

    for _ in range(5):
        client.post(url("store-ticket-issue", shop.store), headers=HX)
    for n in range(60):
        collect_order(shop, status=Order.Status.ALLOCATED, reference=f"MANY{n:04d}")
    for _ in range(40):
        collect_order(shop, status=Order.Status.WAITLISTED)
    with django_assert_max_num_queries(queries_before):
        fragment = client.get(url("store-detail", shop.store), headers=HX)
    # The counts, never the orders: the poll stays the same size at any store.
    assert (field(fragment.text, "collect_ready"), field(fragment.text, "collect_owed")) == ("60", "40")
    assert "data-order=" not in fragment.text
    assert len(fragment.content) < size_before + 1000


def test_ready_list_is_paged_oldest_first_and_searchable(client, shop):
    orders = [collect_order(shop, status=Order.Status.ALLOCATED, reference=f"PG{n:04d}") for n in range(45)]
    other = collect_order(shop, status=Order.Status.ALLOCATED, reference="ELSEWHERE1", store=shop.other)
    client.force_login(shop.staff)
    list_url = url("store-collect-list", shop.store)

    first = client.get(list_url, headers=HX).text
    shown = re.findall(r'data-order="(\w+)"', first)
    assert shown == [o.reference for o in orders[:20]]
    assert "page 1 of 3" in first
    third = re.findall(r'data-order="(\w+)"', client.get(list_url, {"page": 3}, headers=HX).text)
    assert third == [o.reference for o in orders[40:]]
    # A page past the end is the last page; a page that is not a number is the first.
    assert re.findall(r'data-order="(\w+)"', client.get(list_url, {"page": 99}, headers=HX).text) == third
    assert re.findall(r'data-order="(\w+)"', client.get(list_url, {"page": "x"}, headers=HX).text) == shown

    found = client.get(list_url, {"q": "pg003"}, headers=HX).text
    assert re.findall(r'data-order="(\w+)"', found) == [f"PG{n:04d}" for n in range(30, 40)]
    by_name = client.get(list_url, {"q": orders[7].customer.name}, headers=HX).text
    assert orders[7].reference in by_name
    assert 'data-order="ELSEWHERE1"' not in client.get(list_url, {"q": other.reference}, headers=HX).text
    assert "No order ready here matches" in client.get(list_url, {"q": "zz"}, headers=HX).text
    assert client.get(list_url, {"q": "\x00zz"}, headers=HX).status_code == 400  # config.inputs' guard

    # Without htmx the store page itself shows the page asked for.
    response = client.get(list_url, {"q": "PG004"})
    assert response.status_code == 302
    page = client.get(response["Location"]).text
    assert re.findall(r'data-order="(\w+)"', page) == [f"PG{n:04d}" for n in range(40, 45)]


def test_poll_after_sign_out_sends_the_browser_to_sign_in(client, shop):
    response = client.get(
        url("store-detail", shop.store), headers=HX | {"HX-Current-URL": "http://testserver/stores/S101/"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("login") + "?next=%2Fstores%2FS101%2F"
    response = client.get(url("store-detail", shop.store))
    assert response.status_code == 302


def nav_links(html: str) -> dict[str, list[str]]:
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    links: dict[str, list[str]] = {}
    for href, name in re.findall(r'<a href="([^"]+)" data-nav="([^"]+)"', nav):
        links.setdefault(name, []).append(href)
    return links


def test_store_staff_nav_has_their_store_and_its_receiving_page(client, shop):
    client.force_login(shop.staff)
    links = nav_links(client.get(url("store-detail", shop.store)).text)
    assert links == {
        "store": [url("store-detail", shop.store)],
        "receiving": [url("inventory:store-receiving", shop.store)],
        "store-orders": [reverse("store-order-list", kwargs={"code": shop.store.code})],
    }
    for hrefs in links.values():
        assert client.get(hrefs[0]).status_code == 200


def test_head_office_nav_links_every_office_page_and_each_one_opens(client, shop):
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    links = nav_links(client.get(reverse("launch-list")).text)
    assert {k: v[0] for k, v in links.items()} == {
        "launches": reverse("launch-list"),
        "launch-overview": reverse("launch-overview", kwargs={"slug": "iphone-3g"}),
        "deliveries": reverse("inventory:delivery-list"),
        "demand": reverse("inventory:demand", kwargs={"slug": "iphone-3g"}),
        "campaigns": reverse("campaigns"),
        "customers": reverse("customer-lookup"),
        "webhooks": reverse("webhook-list"),
        "orders": reverse("order-list"),
        "system": reverse("system"),
        "admin": reverse("admin:index"),
    }
    for name, hrefs in links.items():
        if name != "admin":  # the admin wants is_staff, which membership alone does not give
            assert client.get(hrefs[0]).status_code == 200, name
    assert 'aria-current="page">Launches' in client.get(reverse("launch-list")).text


def test_the_next_walk_in_can_leave_without_a_unit_and_the_queue_moves_on(client, shop):
    client.force_login(shop.staff)
    for _ in range(2):
        client.post(url("store-ticket-issue", shop.store), HTTP_HX_REQUEST="true")
    movements = StockMovement.objects.count()

    response = client.post(url("store-ticket-pass-over", shop.store), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "Ticket #1 left without a unit" in html
    assert field(html, "now_serving") == "#1" and field(html, "next_up") == "#2"
    assert list(Ticket.objects.order_by("number").values_list("status", flat=True)) == ["no_sale", "waiting"]
    assert StockMovement.objects.count() == movements and stock(shop, shop.black).on_hand == 3

    client.post(url("store-ticket-pass-over", shop.store), HTTP_HX_REQUEST="true")
    response = client.post(url("store-ticket-pass-over", shop.store), HTTP_HX_REQUEST="true")
    assert "Nobody is waiting." in response.content.decode()
    assert not Ticket.objects.filter(status="waiting").exists()


def test_staff_of_another_store_cannot_pass_over_its_queue(client, shop):
    client.force_login(shop.staff)
    client.post(url("store-ticket-issue", shop.store))
    client.force_login(shop.other_staff)
    assert client.post(url("store-ticket-pass-over", shop.store)).status_code == 403
    assert Ticket.objects.get().status == "waiting"


def test_a_sold_out_sku_is_greyed_with_a_badge_and_has_no_sell_button(client, shop):
    client.force_login(shop.staff)
    client.post(url("store-ticket-issue", shop.store), headers=HX)
    page = client.get(url("store-detail", shop.store)).text
    white = re.search(r'<li data-sell="IP3G-16GB-WHITE"([^>]*)>(.*?)</li>', page, re.S)  # none in stock
    assert 'class="unavailable"' in white.group(1)
    assert "Sold out" in white.group(2) and "<button" not in white.group(2)
    black = re.search(r'<li data-sell="IP3G-8GB-BLACK"([^>]*)>(.*?)</li>', page, re.S)  # 3 in stock
    assert "unavailable" not in black.group(1) and "Sold out" not in black.group(2)
    assert 'id="serve-IP3G-8GB-BLACK"' in black.group(2)
    white_row = re.search(r'<tr data-sku="IP3G-16GB-WHITE"([^>]*)>(.*?)</tr>', page, re.S)
    assert 'class="unavailable"' in white_row.group(1) and "Sold out" in white_row.group(2)
    assert "unavailable" not in re.search(r'<tr data-sku="IP3G-8GB-BLACK"([^>]*)>', page).group(1)
