"""The customer's upgrade journey pages: register, order, status, and friendly refusals."""

import datetime
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer, UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.models import Delivery, DeliveryLine, Launch
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.journey import _first_name
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.catalogue import catalogue_clear

pytestmark = pytest.mark.django_db

SKU = "IP3G-8GB-BLACK"


def order_post(account="D0000001", postcode="SW1A 1AA", **overrides):
    data = {
        "account_number": account,
        "postcode": postcode,
        "sku": SKU,
        "fulfilment": "delivery",
        "store": "",
        "token": "",
    }
    data.update(overrides)
    return data


def text(response) -> str:
    """The page's visible words with whitespace collapsed, for sentence assertions."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return " ".join(html.unescape(body).split())


def move_window(launch: Launch, *, opens_in: datetime.timedelta) -> None:
    now = timezone.now()
    Launch.objects.filter(pk=launch.pk).update(
        opens_at=now + opens_in, closes_at=now + opens_in + datetime.timedelta(days=3)
    )
    catalogue_clear()


def test_launch_list_shows_open_and_upcoming_launches_only(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    LaunchFactory(
        slug="old",
        name="Last year's phone",
        opens_at=timezone.now() - datetime.timedelta(days=30),
        closes_at=timezone.now() - datetime.timedelta(days=20),
    )
    response = client.get(reverse("journey-launches"))
    assert response.status_code == 200
    assert launch.name in text(response)
    assert "Last year's phone" not in text(response)


def test_order_in_the_window_redirects_to_a_status_page_with_the_exact_position(client, launch_with_stock):
    launch, sku, store, people = launch_with_stock(online_units=0, customers=3)
    for account in ("D0000002", "D0000003"):
        order_admit(launch=launch.slug, customer=account, sku=SKU, fulfilment="delivery", channel="online")
    launch_allocate(launch_id=launch.pk)
    Delivery.objects.create(
        reference="DEL-1", launch=launch, expected_on=datetime.date.today() + datetime.timedelta(days=3)
    )
    # An earlier delivery that brings only another model, and one already received: not "next".
    other = Delivery.objects.create(
        reference="DEL-0", launch=launch, expected_on=datetime.date.today() + datetime.timedelta(days=1)
    )
    DeliveryLine.objects.create(delivery=other, sku=SKUFactory(code="IP3G-16GB-WHITE"), quantity=10)
    Delivery.objects.create(
        reference="DEL-R", launch=launch, expected_on=datetime.date.today(), status=Delivery.Status.RECEIVED
    )

    page = client.get(reverse("journey-launch", kwargs={"slug": launch.slug}))
    assert "sold out online — you can still join the waitlist" in text(page)

    response = client.post(reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post())
    order = Order.objects.get(customer__account_number="D0000001")
    assert response.status_code == 302
    assert response["Location"] == reverse("journey-order", kwargs={"reference": order.reference})
    page = client.get(response["Location"])
    words = text(page)
    assert f"You are #3 in the queue for home delivery of {sku.name}; no units left" in words
    assert "Sold out for now" in words
    expected = (datetime.date.today() + datetime.timedelta(days=3)).strftime("%A %-d %B")
    assert f"next delivery is expected {expected}" in words
    assert 'hx-trigger="every 2s" data-poll-visible-only' in page.content.decode() or (
        "every 2s [document.visibilityState" in page.content.decode()
    )
    # personal data stays off the page: first name only
    customer = Customer.objects.get(account_number="D0000001")
    assert _first_name(customer.name) in words
    assert (
        customer.email not in words
        and customer.postcode not in words
        and customer.account_number not in words
    )


def test_registration_before_the_window_records_preferences(client, launch_with_stock):
    launch, sku, store, _ = launch_with_stock(customers=0)
    move_window(launch, opens_in=datetime.timedelta(days=2))
    customer = CustomerFactory(account_number="R0000001", postcode="EC1A 1BB", name="Anna Smith")
    page = client.get(reverse("journey-launch", kwargs={"slug": launch.slug}))
    assert "Register your interest" in text(page)

    response = client.post(
        reverse("journey-register", kwargs={"slug": launch.slug}),
        {
            "account_number": " r0000001 ",
            "postcode": "ec1a1bb",
            "preferred_sku": SKU,
            "preferred_store": store.code,
        },
    )
    assert response.status_code == 200
    assert "You're registered, Anna" in text(response)
    registration = UpgradeRegistration.objects.get(launch=launch, customer=customer)
    assert (registration.preferred_sku, registration.preferred_store) == (sku, store)


def test_registration_with_a_wrong_postcode_is_refused_without_saying_which_field(client, launch_with_stock):
    launch, *_ = launch_with_stock(customers=0)
    move_window(launch, opens_in=datetime.timedelta(days=2))
    CustomerFactory(account_number="R0000001", postcode="EC1A 1BB")
    response = client.post(
        reverse("journey-register", kwargs={"slug": launch.slug}),
        {"account_number": "R0000001", "postcode": "SW1A 1AA", "preferred_sku": SKU, "preferred_store": ""},
    )
    assert response.status_code == 200
    assert "We couldn't match that account number and postcode" in text(response)
    assert not UpgradeRegistration.objects.exists()


def test_registration_of_a_suspended_account_is_a_friendly_refusal(client, launch_with_stock):
    launch, *_ = launch_with_stock(customers=0)
    move_window(launch, opens_in=datetime.timedelta(days=2))
    CustomerFactory(account_number="R0000001", contract_status=Customer.ContractStatus.SUSPENDED)
    response = client.post(
        reverse("journey-register", kwargs={"slug": launch.slug}),
        {"account_number": "R0000001", "postcode": "SW1A 1AA", "preferred_sku": SKU},
    )
    assert "not eligible for an upgrade" in text(response)
    assert not UpgradeRegistration.objects.exists()


def test_registration_posted_after_the_window_opened_goes_back_to_the_launch_page(client, launch_with_stock):
    launch, *_ = launch_with_stock(customers=0)
    CustomerFactory(account_number="R0000001")
    response = client.post(
        reverse("journey-register", kwargs={"slug": launch.slug}),
        {"account_number": "R0000001", "postcode": "SW1A 1AA", "preferred_sku": SKU},
    )
    assert response.status_code == 302
    assert not UpgradeRegistration.objects.filter(customer__account_number="R0000001").exists()


def test_unregistered_customer_is_told_they_are_not_eligible(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    CustomerFactory(account_number="U0000001")
    response = client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post("U0000001")
    )
    assert response.status_code == 200
    assert "can't find a registration of interest" in text(response)
    assert not Order.objects.exists()


def test_second_order_shows_the_first_reference_with_a_link(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    first = client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post(token="a" * 20)
    )
    assert first.status_code == 302
    order = Order.objects.get()
    again = client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post(token="b" * 20)
    )
    assert again.status_code == 200
    assert f"You already have an order for this launch (reference {order.reference})" in text(again)
    assert reverse("journey-order", kwargs={"reference": order.reference}) in again.content.decode()
    assert Order.objects.count() == 1


def test_order_form_preselects_the_only_model_and_home_delivery(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    body = client.get(reverse("journey-launch", kwargs={"slug": launch.slug})).content.decode()
    assert re.search(rf'<option value="{SKU}"[^>]*selected', body)
    assert re.search(r'<input type="radio" name="fulfilment" value="delivery"[^>]*checked', body)
    assert "5 units left for home delivery" in " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_double_submit_of_one_form_returns_the_same_order(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    page = client.get(reverse("journey-launch", kwargs={"slug": launch.slug}))
    token = re.search(r'name="token" value="([^"]+)"', page.content.decode()).group(1)
    url = reverse("journey-order-place", kwargs={"slug": launch.slug})
    first = client.post(url, order_post(token=token))
    second = client.post(url, order_post(token=token))
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Order.objects.count() == 1


def test_collect_order_needs_a_store_and_is_served_from_it(client, launch_with_stock):
    launch, sku, store, _ = launch_with_stock(store_units=0)
    url = reverse("journey-order-place", kwargs={"slug": launch.slug})
    missing = client.post(url, order_post(fulfilment="collect"))
    assert "Please choose the store you will collect from." in text(missing)
    assert not Order.objects.exists()

    availability = client.get(
        reverse("journey-availability", kwargs={"slug": launch.slug}),
        {"sku": SKU, "fulfilment": "collect", "store": store.code},
        headers={"HX-Request": "true"},
    )
    assert f"{sku.name} is sold out for collection at {store.name} — you can still join the waitlist" in text(
        availability
    )
    assert "<html" not in availability.content.decode()

    placed = client.post(url, order_post(fulfilment="collect", store=store.code))
    assert placed.status_code == 302
    order = Order.objects.get()
    assert order.store == store and order.pool.store == store


def test_closed_launch_says_so_and_takes_no_orders(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    move_window(launch, opens_in=-datetime.timedelta(days=10))
    page = client.get(reverse("journey-launch", kwargs={"slug": launch.slug}))
    assert "Ordering for" in text(page) and "closed on" in text(page)
    response = client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post(), follow=True
    )
    assert "Ordering for this launch is not open right now, so nothing was ordered." in text(response)
    assert not Order.objects.exists()


def test_status_fragment_for_htmx_and_polling_stops_once_the_order_is_finished(client, launch_with_stock):
    launch, sku, *_ = launch_with_stock(online_units=1)
    order = order_admit(
        launch=launch.slug, customer="D0000001", sku=SKU, fulfilment="delivery", channel="online"
    ).order
    url = reverse("journey-order", kwargs={"reference": order.reference})
    queued = client.get(url, headers={"HX-Request": "true"})
    body = queued.content.decode()
    assert body.lstrip().startswith('<section id="status-panel"') and "<html" not in body
    assert "every 2s" in body
    assert "You are #1 in the queue for home delivery" in text(queued)

    launch_allocate(launch_id=launch.pk)
    allocated = client.get(url, headers={"HX-Request": "true"})
    assert "Your phone is reserved" in text(allocated)
    # Reserved is not the end: the page keeps following the order until it is sent.
    assert "every 2s" in allocated.content.decode()
    steps = dict(re.findall(r'data-step="(\w+)" class="(done)?"', allocated.content.decode()))
    assert steps == {"ordered": "done", "reserved": "done", "sent": ""}
    assert 'data-step="sent" class="" aria-current="step"' in allocated.content.decode()

    Order.objects.filter(pk=order.pk).update(status=Order.Status.FULFILLED)
    fulfilled = client.get(url, headers={"HX-Request": "true"})
    assert "Order complete" in text(fulfilled)
    assert "hx-trigger" not in fulfilled.content.decode()
    assert 'data-step="sent" class="done"' in fulfilled.content.decode()


NASTY = ["\x00", "A\x00B", "x" * 100_000, "<script>alert(1)</script>", "' OR 1=1 --", "\u202e\ufeff", " "]


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("field", ["account_number", "postcode", "sku", "fulfilment", "store", "token"])
def test_no_input_to_the_order_form_is_a_500(client, launch_with_stock, field, value):
    launch, *_ = launch_with_stock(online_units=5)
    response = client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}), order_post(**{field: value})
    )
    if "\x00" in value:  # refused before any view by config.inputs.InputGuard
        assert response.status_code == 400 and "characters we can" in text(response)
        assert not Order.objects.exists()
        return
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert "There is a problem" in text(response)
        assert not Order.objects.exists()


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("field", ["account_number", "postcode", "preferred_sku", "preferred_store"])
def test_no_input_to_the_registration_form_is_a_500(client, launch_with_stock, field, value):
    launch, *_ = launch_with_stock(customers=1)
    move_window(launch, opens_in=datetime.timedelta(days=1))
    data = {"account_number": "D0000001", "postcode": "SW1A 1AA", "preferred_sku": SKU, "preferred_store": ""}
    data[field] = value
    response = client.post(reverse("journey-register", kwargs={"slug": launch.slug}), data)
    if "\x00" in value:  # refused before any view by config.inputs.InputGuard
        assert response.status_code == 400
        return
    assert response.status_code == 200
    if field != "preferred_store" or value.strip():
        assert "There is a problem" in text(response)


def test_nul_bytes_in_the_reference_or_availability_query_are_not_500(client, launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    assert client.get("/upgrade/orders/LD%00ABC/").status_code == 404
    assert client.get("/upgrade/orders/LDNOSUCHREF1/").status_code == 404
    assert client.get("/upgrade/no-such-launch/").status_code == 404
    for params in (
        {"sku": "\x00"},
        {"store": "\x00", "fulfilment": "collect", "sku": SKU},
        {"store": "x" * 10_000},
    ):
        response = client.get(reverse("journey-availability", kwargs={"slug": launch.slug}), params)
        # NUL is refused before any view (config.inputs.InputGuard); the rest is "no choice".
        assert response.status_code == (400 if any("\x00" in v for v in params.values()) else 200)
    assert client.post(reverse("journey-order", kwargs={"reference": "LDAAAAAAAAAA"})).status_code == 405


def test_polling_the_status_panel_costs_three_queries_at_most(
    client, launch_with_stock, django_assert_max_num_queries
):
    launch, *_ = launch_with_stock(online_units=0, customers=2)
    order = order_admit(
        launch=launch.slug, customer="D0000001", sku=SKU, fulfilment="delivery", channel="online"
    ).order
    launch_allocate(launch_id=launch.pk)
    url = reverse("journey-order", kwargs={"reference": order.reference})
    with django_assert_max_num_queries(3):  # the order, its position, the next delivery
        response = client.get(url, headers={"HX-Request": "true"})
    assert "Sold out for now" in text(response)


@pytest.mark.parametrize(
    ("name", "greeting"),
    [
        ("Anna Smith", "Anna"),
        ("Ms Jane Doe", "Jane"),
        ("Dr. Ali Khan", "Ali"),
        ("Dr Khan", "there"),
        ("Cher", "Cher"),
        ("", "there"),
    ],
)
def test_status_page_greets_by_first_name_only(client, launch_with_stock, name, greeting):
    launch, *_ = launch_with_stock(online_units=1, customers=1)
    Customer.objects.filter(account_number="D0000001").update(name=name)
    order = order_admit(
        launch=launch.slug, customer="D0000001", sku=SKU, fulfilment="delivery", channel="online"
    ).order
    response = client.get(reverse("journey-order", kwargs={"reference": order.reference}))
    assert f"Hello {greeting}" in text(response)


def test_one_form_token_reused_with_other_details_is_a_friendly_conflict(client, launch_with_stock):
    launch, sku, store, _ = launch_with_stock(online_units=5, customers=2)
    url = reverse("journey-order-place", kwargs={"slug": launch.slug})
    token = "t" * 32
    assert client.post(url, order_post(token=token)).status_code == 302
    first = Order.objects.get()
    response = client.post(url, order_post("D0000002", token=token))
    assert response.status_code == 200
    assert "This form was already sent with different details" in text(response)
    assert first.reference not in response.content.decode()
    fresh = re.search(r'name="token" value="([^"]+)"', response.content.decode()).group(1)
    assert fresh != token
    assert client.post(url, order_post("D0000002", token=fresh)).status_code == 302
    assert Order.objects.count() == 2
