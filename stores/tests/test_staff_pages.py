"""Staff sign in, land on the page for their role, and see real figures from the database."""

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from customers.models import Customer
from inventory.models import SKU, Launch, Location, StockMovement
from inventory.services import StockChange, stock_apply, stock_receive
from orders.models import Order
from stores.models import Store
from stores.selectors import user_is_head_office
from stores.tests.factories import second_factor_proved

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str):
    response = client.post(reverse("login"), {"username": username, "password": password})
    user = User.objects.get(username=username)
    if user_is_head_office(user=user):  # head office also proves a one-time code
        second_factor_proved(client, user)
    return response


def cell(html: str, sku: str, field: str) -> int:
    """The number in the `field` cell of the row for `sku`."""
    row = re.search(rf'<tr data-sku="{sku}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    return int(re.search(rf'data-field="{field}">([\d,-]+)<', row).group(1).replace(",", ""))


def test_anonymous_users_are_sent_to_sign_in(client, seeded):
    for url in ["/", reverse("store-detail", args=["S001"]), reverse("launch-overview", args=["iphone-3g"])]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_store_staff_sign_in_and_land_on_their_store(client, seeded):
    username, password = seeded.staff["S003"]
    response = sign_in(client, username, password)
    assert response.status_code == 302
    response = client.get(response.url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("store-detail", args=["S003"])
    assert response.status_code == 200
    assert "S003" in response.text
    assert "Carphone Warehouse" in response.text


def test_wrong_password_shows_the_form_again(client, seeded):
    username, _ = seeded.staff["S001"]
    response = sign_in(client, username, "not-the-password")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert 'role="alert"' in response.text


def test_staff_of_one_store_get_403_on_another(client, seeded):
    sign_in(client, *seeded.staff["S001"])
    assert client.get(reverse("store-detail", args=["S001"])).status_code == 200
    assert client.get(reverse("store-detail", args=["S002"])).status_code == 403
    assert (
        client.get(reverse("store-detail", args=["S002"]), headers={"HX-Request": "true"}).status_code == 403
    )


def test_staff_cannot_tell_another_store_from_no_store(client, seeded):
    """The lookup is among the user's own stores: another store's code and a code that
    names none are the same 403, so store codes cannot be enumerated. Head office, who may
    see every store, gets 404 for a code that names none."""
    sign_in(client, *seeded.staff["S001"])
    other = client.get(reverse("store-detail", args=["S002"]))
    missing = client.get(reverse("store-detail", args=["S999"]))
    assert other.status_code == missing.status_code == 403
    assert client.get(reverse("inventory:store-receiving", args=["S999"])).status_code == 403


def test_store_staff_may_not_see_head_office_pages(client, seeded):
    sign_in(client, *seeded.staff["S001"])
    assert client.get(reverse("launch-overview", args=["iphone-3g"])).status_code == 403
    assert client.get(reverse("launch-list")).status_code == 403


def test_head_office_lands_on_the_launch_and_sees_every_store(client, seeded):
    sign_in(client, *seeded.head_office)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("launch-overview", args=["iphone-3g"])
    for code in ["S001", "S004"]:
        assert client.get(reverse("store-detail", args=[code])).status_code == 200
    assert client.get(reverse("launch-list")).status_code == 200


def test_store_page_shows_the_stock_in_the_database(client, seeded):
    store = Store.objects.get(code="S001")
    location = Location.objects.get(store=store)
    sku = SKU.objects.get(code="IP3G-16GB-BLACK")
    stock_receive(location=location, sku=sku, quantity=7, reference="TEST")
    stock_apply(
        changes=[
            StockChange(location=location, sku=sku, kind=StockMovement.Kind.ALLOCATION, reserved_delta=4),
            StockChange(location=location, sku=sku, kind=StockMovement.Kind.TRANSFER_IN, in_transit_delta=3),
        ]
    )
    sign_in(client, *seeded.staff["S001"])
    html = client.get(reverse("store-detail", args=["S001"])).text
    assert cell(html, "IP3G-16GB-BLACK", "on_hand") == 9
    assert cell(html, "IP3G-16GB-BLACK", "reserved") == 4
    assert cell(html, "IP3G-16GB-BLACK", "available") == 5
    assert cell(html, "IP3G-16GB-BLACK", "in_transit") == 3
    assert cell(html, "IP3G-8GB-BLACK", "on_hand") == 2
    assert "iPhone 3G" in html


def test_the_stock_panel_refreshes_itself_as_a_fragment(client, seeded):
    sign_in(client, *seeded.staff["S002"])
    full = client.get(reverse("store-detail", args=["S002"])).text
    # Polls every 2 s while the tab is visible (static/js/launchday.js skips hidden tabs).
    assert 'hx-trigger="every 2s" data-poll-visible-only' in full
    assert 'hx-swap="outerHTML"' in full
    assert "<html" in full
    fragment = client.get(reverse("store-detail", args=["S002"]), headers={"HX-Request": "true"}).text
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section id="live-panel"')
    assert cell(fragment, "IP3G-16GB-WHITE", "on_hand") == 2


def test_pages_show_collect_orders_and_launch_figures(client, seeded):
    launch = Launch.objects.get(slug="iphone-3g")
    store = Store.objects.get(code="S001")
    sku = SKU.objects.get(code="IP3G-8GB-BLACK")
    customers = list(Customer.objects.filter(account_number__startswith="D").order_by("account_number")[:3])
    for i, (customer, status) in enumerate(
        zip(customers, [Order.Status.QUEUED, Order.Status.ALLOCATED, Order.Status.FULFILLED], strict=True)
    ):
        Order.objects.create(
            reference=f"T{i:07d}",
            launch=launch,
            customer=customer,
            sku=sku,
            channel=Order.Channel.STORE,
            fulfilment=Order.Fulfilment.COLLECT,
            store=store,
            pool=Location.objects.get(store=store),
            status=status,
        )
    sign_in(client, *seeded.staff["S001"])
    html = client.get(reverse("store-detail", args=["S001"])).text
    # Queued and allocated still wait to be handed over; the fulfilled one does not.
    assert re.search(r'data-field="collect_waiting">2<', html)

    client.logout()
    sign_in(client, *seeded.head_office)
    html = client.get(reverse("launch-overview", args=["iphone-3g"])).text
    row = re.search(r'<tr data-sku="IP3G-8GB-BLACK"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'data-status="queued">1<', row)
    assert re.search(r'data-status="allocated">1<', row)
    assert re.search(r'data-status="fulfilled">1<', row)
    assert re.search(r'data-status="waitlisted">0<', row)
    assert cell(html, "IP3G-8GB-BLACK", "online_on_hand") == 5
    assert re.search(r'<dd data-field="registrations">40<', html)


def test_sign_out_is_a_post(client, seeded):
    sign_in(client, *seeded.staff["S001"])
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("store-detail", args=["S001"])).status_code == 302


def test_unknown_launch_is_404_for_head_office(client, seeded):
    sign_in(client, *seeded.head_office)
    assert client.get(reverse("launch-overview", args=["no-such-launch"])).status_code == 404
