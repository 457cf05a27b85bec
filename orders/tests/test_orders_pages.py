"""The orders pages: filters and search find exactly the database's orders, keyset pages
and bounded windows cover every order once, bad input is a form error, store staff see
their own store's orders only, and an order's page cancels and resends with a confirmation."""

import itertools
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import Message
from customers.tests.factories import CustomerFactory
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.selectors import order_search as search
from orders.services.allocation import launch_allocate
from orders.services.collection import collect_deadlines_expire, order_collect
from stores.models import StaffMembership
from stores.tests.factories import (
    PartnerFactory,
    StaffMembershipFactory,
    StoreFactory,
    UserFactory,
    head_office_login,
)

pytestmark = [pytest.mark.django_db, pytest.mark.services]


@pytest.fixture
def world():
    """24 orders over two SKUs, two stores (one a partner's), every channel; one unit
    online, so the first delivery order holds it and the later ones wait."""
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g", skus=[black, white])
    cpw = PartnerFactory(code="cpw", name="Carphone")
    own, theirs = StoreFactory(code="S001", name="Regent Street"), StoreFactory(code="S002", partner=cpw)
    online = location_online_pool()
    stock_receive(location=online, sku=black, quantity=1, reference="seed")
    routes = itertools.cycle(
        [
            (black, None, Order.Channel.ONLINE, None),
            (white, own, Order.Channel.STORE, None),
            (black, theirs, Order.Channel.PARTNER, cpw),
            (white, None, Order.Channel.PARTNER, cpw),
        ]
    )
    orders = []
    for n in range(24):
        sku, store, channel, partner = next(routes)
        orders.append(
            Order(
                reference=f"R{n:05d}X",
                launch=launch,
                customer=CustomerFactory(account_number=f"D{n:07d}"),
                sku=sku,
                channel=channel,
                fulfilment="collect" if store else "delivery",
                store=store,
                pool=location_for_store(store=store) if store else online,
                partner=partner,
            )
        )
    Order.objects.bulk_create(orders)
    launch_allocate(launch_id=launch.pk)
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    staff = StaffMembershipFactory(user=UserFactory(username="staff-s001"), store=own).user
    return launch, head, staff, own, theirs


def references(html: str) -> list[str]:
    return re.findall(r'class="reference">(R\d{5}X)<', html)


def expected(**filters) -> list[str]:
    return list(Order.objects.filter(**filters).order_by("-sequence").values_list("reference", flat=True))


@pytest.fixture
def office(client, world):
    head_office_login(client, world[1])
    return client


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("", {}),
        ("?status=waitlisted", {"status": "waitlisted"}),
        ("?status=allocated", {"status": "allocated"}),
        ("?sku=IP3G-16GB-WHITE", {"sku__code": "IP3G-16GB-WHITE"}),
        ("?store=S002", {"store__code": "S002"}),
        ("?channel=partner", {"channel": "partner"}),
        ("?partner=cpw&sku=IP3G-8GB-BLACK", {"partner__code": "cpw", "sku__code": "IP3G-8GB-BLACK"}),
        ("?launch=iphone-3g&channel=store&status=waitlisted", {"channel": "store", "status": "waitlisted"}),
    ],
)
def test_each_filter_finds_exactly_the_matching_orders_newest_first(office, query, filters):
    response = office.get(reverse("order-list") + query)
    assert response.status_code == 200
    assert references(response.text) == expected(**filters)
    assert expected(**filters) or not filters  # every case but "none match" has rows


def test_search_finds_an_order_by_reference_or_by_account_number(office):
    page = office.get(reverse("order-list") + "?q=r00007x").text  # case and spaces do not matter
    assert references(page) == ["R00007X"]
    page = office.get(reverse("order-list") + "?q=D 0000011").text
    assert references(page) == ["R00011X"]
    page = office.get(reverse("order-list") + "?q=NOSUCH").text
    assert references(page) == [] and "No orders match" in page


@pytest.mark.parametrize(
    "query",
    [
        "?status=lost",
        "?sku=%00",
        "?store=" + "x" * 5000,
        "?before=-3",
        "?before=abc",
        "?q=%3Cscript%3E",
        "?q=" + "9" * 41,
    ],
)
def test_bad_filters_are_form_errors_not_500s(office, query):
    response = office.get(reverse("order-list") + query)
    assert response.status_code == 400
    # A NUL byte is turned away before any view (the app's 400 page); the rest are form errors.
    assert "%00" in query or "There is a problem" in response.text
    assert references(response.text) == []


def test_keyset_pages_walk_every_order_once_without_offset_or_count(office, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 5)
    seen, url = [], reverse("order-list") + "?channel=partner"
    for _ in range(10):
        with CaptureQueriesContext(connection) as queries:
            page = office.get(url).text
        sql = " ".join(q["sql"] for q in queries.captured_queries).upper()
        assert "OFFSET" not in sql and "COUNT(" not in sql
        seen += references(page)
        older = re.search(r'<a href="([^"]+)" hx-get="[^"]+"[^>]*>Older</a>', page)
        if not older:
            break
        url = older.group(1).replace("&amp;", "&")
    assert seen == expected(channel="partner")


def test_a_window_bounds_each_page_and_the_next_window_continues_below_it(office, monkeypatch):
    """With the filter no index leads with, a page looks through WINDOW sequences at most."""
    monkeypatch.setattr(search, "WINDOW", 6)
    top = Order.objects.order_by("-sequence").first().sequence
    page = office.get(reverse("order-list") + "?sku=IP3G-8GB-BLACK").text
    assert references(page) == expected(sku__code="IP3G-8GB-BLACK", sequence__gte=top - 5)
    assert f"down to number {top - 5}" in page
    seen, url = references(page), None
    while match := re.search(r'<a href="([^"]+)" hx-get="[^"]+"[^>]*>Search older orders</a>', page):
        url = match.group(1).replace("&amp;", "&")
        page = office.get(url).text
        seen += references(page)
    assert url is not None
    assert seen == expected(sku__code="IP3G-8GB-BLACK")


def test_a_page_of_orders_reads_what_it_shows_in_the_same_queries_however_long(office, monkeypatch):
    """Each row's customer, SKU, store and partner come with the page's one read of orders:
    a field left out of order_search's list would be read again for every row."""
    url = reverse("order-list") + "?channel=partner"
    counts = []
    for size in (2, 50):
        monkeypatch.setattr(search, "PAGE_SIZE", size)
        with CaptureQueriesContext(connection) as queries:
            page = office.get(url).text
        counts.append(len(queries.captured_queries))
    assert len(references(page)) == len(expected(channel="partner")) > 2
    assert counts[0] == counts[1]
    order = Order.objects.filter(channel="partner", store__isnull=False).order_by("-sequence").first()
    row = re.search(rf"{order.reference}</a></td>(.*?)</tr>", page, re.S).group(1)
    for shown in (
        order.customer.account_number,
        order.sku.code,
        f"({order.store.code})",
        f"({order.partner.code})",
    ):
        assert shown in row


def test_htmx_gets_only_the_results(office):
    response = office.get(
        reverse("order-list") + "?status=waitlisted", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="order-results"
    )
    assert response.text.lstrip().startswith('<div id="order-results"')
    assert "<html" not in response.text
    assert references(response.text) == expected(status="waitlisted")


def test_store_staff_see_their_own_stores_orders_only(client, world):
    _, _, staff, own, theirs = world
    client.force_login(staff)
    page = client.get(reverse("store-order-list", kwargs={"code": "S001"}) + "?status=waitlisted").text
    assert references(page) == expected(store=own, status="waitlisted")
    assert 'name="store"' not in page  # no other store to choose
    assert client.get(reverse("store-order-list", kwargs={"code": "S002"})).status_code == 403
    assert client.get(reverse("order-list")).status_code == 403
    mine = Order.objects.filter(store=own).first()
    other = Order.objects.filter(store=theirs).first()
    assert (
        client.get(
            reverse("store-order-detail", kwargs={"code": "S001", "reference": mine.reference})
        ).status_code
        == 200
    )
    # Another store's order under one's own store: no such order here.
    assert (
        client.get(
            reverse("store-order-detail", kwargs={"code": "S001", "reference": other.reference})
        ).status_code
        == 404
    )
    assert (
        client.get(
            reverse("store-order-detail", kwargs={"code": "S002", "reference": other.reference})
        ).status_code
        == 403
    )
    # Nor can they act on it.
    response = client.post(
        reverse("store-order-detail", kwargs={"code": "S001", "reference": other.reference}),
        {"action": "cancel", "cancel-reason": "x", "cancel-confirm": "on"},
    )
    assert response.status_code == 404
    assert Order.objects.get(pk=other.pk).status != "cancelled"


def detail(reference: str) -> str:
    return reverse("order-detail", kwargs={"reference": reference})


def test_the_order_page_tells_its_story(office):
    waiting = Order.objects.filter(
        status="waitlisted", fulfilment="delivery", sku__code="IP3G-8GB-BLACK"
    ).first()
    holder = Order.objects.get(status="allocated", fulfilment="delivery")
    page = office.get(detail(waiting.reference)).text
    assert "Admitted" in page and "Waitlisted" in page
    assert re.search(r"Waitlist number 1 in its pool; now 1 in line", page)
    assert office.get(detail(holder.reference)).text.count("Allocated") >= 1
    assert office.get(detail("NOSUCH1")).status_code == 404


def test_cancel_needs_a_reason_and_a_yes_then_serves_the_next_and_refuses_a_second(
    office, world, django_capture_on_commit_callbacks
):
    launch, _, _, _, _ = world
    holder = Order.objects.get(status="allocated", fulfilment="delivery")
    nxt = (
        Order.objects.filter(status="waitlisted", pool=holder.pool, sku=holder.sku)
        .order_by("wait_number")
        .first()
    )

    response = office.post(detail(holder.reference), {"action": "cancel", "cancel-reason": "ordered twice"})
    assert response.status_code == 400 and "Tick the box to confirm" in response.text
    response = office.post(detail(holder.reference), {"action": "cancel", "cancel-confirm": "on"})
    assert response.status_code == 400 and "Reason" in response.text
    assert Order.objects.get(pk=holder.pk).status == "allocated"

    with django_capture_on_commit_callbacks(execute=True):
        response = office.post(
            detail(holder.reference),
            {"action": "cancel", "cancel-reason": "ordered twice", "cancel-confirm": "on"},
        )
    assert response.status_code == 302
    assert Order.objects.get(pk=holder.pk).status == "cancelled"
    assert Order.objects.get(pk=nxt.pk).status == "allocated"
    page = office.get(detail(holder.reference)).text
    assert "Cancelled" in page and "ordered twice" in page and "Email: Order cancelled" in page

    again = office.post(
        detail(holder.reference), {"action": "cancel", "cancel-reason": "again", "cancel-confirm": "on"}
    )
    assert again.status_code == 400 and "cannot be cancelled" in again.text
    assert Message.objects.filter(kind="order_cancelled", order_reference=holder.reference).count() == 1


def test_resend_queues_one_linked_copy_of_a_sent_email(office):
    order = Order.objects.filter(status="waitlisted").first()
    mail = Message.objects.filter(order_reference=order.reference).first()  # the allocator's
    page = office.get(detail(order.reference)).text
    assert "Send " not in page  # still in the outbox: nothing to send again yet
    Message.objects.filter(pk=mail.pk).update(status=Message.Status.SENT)
    page = office.get(detail(order.reference)).text
    assert f"Send {mail.get_kind_display().lower()} again" in page
    token = uuid.uuid4().hex
    form = {"action": "resend", "resend-message": mail.pk, "resend-token": token}
    assert office.post(detail(order.reference), form).status_code == 400  # no yes
    form["resend-confirm"] = "on"
    assert office.post(detail(order.reference), form).status_code == 302
    assert office.post(detail(order.reference), form).status_code == 302  # a double click
    assert Message.objects.filter(resend_of=mail).count() == 1
    # An email of another order is not this page's to resend.
    other = Message.objects.create(
        kind=Message.Kind.ORDER_RECEIVED,
        dedupe_key="received:ELSE",
        customer=CustomerFactory(),
        status="sent",
    )
    form.update({"resend-message": other.pk, "resend-token": uuid.uuid4().hex})
    response = office.post(detail(order.reference), form)
    assert response.status_code == 400 and "not one of this order" in response.text
    assert not Message.objects.filter(resend_of=other).exists()


def test_the_timeline_tells_a_collection_and_an_expired_collection_apart(office, world, time_machine):
    _, _, _, own, _ = world
    stock_receive(
        location=location_for_store(store=own),
        sku=Order.objects.filter(store=own).first().sku,
        quantity=2,
        reference="more",
    )
    launch_allocate(launch_id=world[0].pk)
    collected, expired = Order.objects.filter(store=own, status="allocated").order_by("sequence")[:2]
    order_collect(order=collected)
    time_machine.move_to(expired.collect_by + timezone.timedelta(minutes=1), tick=False)
    assert collect_deadlines_expire() >= 1

    page = office.get(detail(collected.reference)).text
    assert "Collected" in page and "Cancel this order" not in page
    page = office.get(detail(expired.reference)).text
    assert "Collection expired" in page and "Not collected by" in page
    assert "Cancel this order" not in page
