"""seed_demo prints the sign-ins of API.md and seeds exactly the data it promises."""

import datetime
import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import RequestFactory
from django.utils import timezone

from customers.models import Campaign, Customer, Message, UpgradeRegistration
from inventory.models import AllocationPlan, Delivery, Launch, Location, Stock, StockMovement
from orders.models import Order, Ticket
from orders.tests.invariants import fcfs_violations, oversold
from stores.models import Partner, PartnerAPIKey, StaffMembership, Store
from stores.tests.conftest import seed

pytestmark = pytest.mark.django_db

SIGN_IN_LINE = re.compile(
    r"^(partner cpw \S+|staff staff-s\d{3} \S+ S\d{3}|head-office \S+ \S+|head-office-codes \S+( \S+){10})$"
)


def test_prints_one_line_per_sign_in_and_nothing_else(seeded):
    lines = seeded.stdout.splitlines()
    assert all(SIGN_IN_LINE.match(line) for line in lines), lines
    assert [line.split()[0] for line in lines].count("partner") == 1
    assert [line.split()[0] for line in lines].count("head-office") == 1
    assert sorted(seeded.staff) == ["S001", "S002", "S003", "S004"]
    assert len(lines) == 1 + 4 + 1 + 1


def test_printed_passwords_sign_in(seeded):
    # django-axes watches every sign-in, so authenticate() is given the request it counts by.
    request = RequestFactory().post("/accounts/login/")
    for store_code, (username, password) in seeded.staff.items():
        user = authenticate(request, username=username, password=password)
        assert user is not None
        assert StaffMembership.objects.get(user=user).store.code == store_code
    head = authenticate(request, username=seeded.head_office[0], password=seeded.head_office[1])
    assert head is not None
    assert StaffMembership.objects.get(user=head).role == StaffMembership.Role.HEAD_OFFICE
    assert authenticate(request, username=seeded.head_office[0], password="wrong") is None


def test_printed_api_key_authenticates_for_cpw(seeded):
    assert PartnerAPIKey.objects.is_valid(seeded.partner_key)
    key = PartnerAPIKey.objects.get_from_key(seeded.partner_key)
    assert key.partner.code == "cpw"
    assert key.partner.name == "Carphone Warehouse"
    assert key.scope == PartnerAPIKey.Scope.ORDERS
    assert not PartnerAPIKey.objects.is_valid(seeded.partner_key + "x")


def test_one_open_launch_with_its_skus(seeded):
    launch = Launch.objects.get(slug="iphone-3g")
    assert launch.is_open
    assert launch.per_customer_limit == 1
    assert (launch.closes_at - launch.opens_at).days == 7
    assert sorted(launch.skus.values_list("code", flat=True)) == [
        "IP3G-16GB-BLACK",
        "IP3G-16GB-WHITE",
        "IP3G-8GB-BLACK",
    ]
    assert set(launch.skus.values_list("product__code", flat=True)) == {"IP3G"}


def test_customers_registered_and_eligible_or_known_and_unregistered(seeded):
    launch = Launch.objects.get(slug="iphone-3g")
    registered = UpgradeRegistration.objects.filter(launch=launch)
    assert sorted(registered.values_list("customer__account_number", flat=True)) == [
        f"D{i:07d}" for i in range(1, 41)
    ]
    assert all(c.may_upgrade for c in Customer.objects.filter(account_number__startswith="D"))
    unregistered = Customer.objects.filter(account_number__startswith="N")
    assert sorted(unregistered.values_list("account_number", flat=True)) == [
        f"N{i:07d}" for i in range(1, 101)
    ]
    assert not UpgradeRegistration.objects.filter(customer__in=unregistered).exists()
    # Preferences name a launch SKU and either a seeded store or home delivery (null).
    assert set(registered.values_list("preferred_sku__code", flat=True)) <= set(
        launch.skus.values_list("code", flat=True)
    )
    assert set(registered.exclude(preferred_store=None).values_list("preferred_store__code", flat=True)) <= {
        "S001",
        "S002",
        "S003",
        "S004",
    }

    from customers.services import registration

    if hasattr(registration, "eligible_customer_id"):
        assert registration.eligible_customer_id(launch_id=launch.pk, account_number="D0000040")
        assert registration.eligible_customer_id(launch_id=launch.pk, account_number="N0000001") is None


def test_stores_split_between_own_and_cpw(seeded):
    stores = list(Store.objects.order_by("code"))
    assert [s.code for s in stores] == ["S001", "S002", "S003", "S004"]
    assert [s.partner.code if s.partner else None for s in stores] == [None, None, "cpw", "cpw"]
    assert {s.opens_at_launch.strftime("%H:%M") for s in stores} == {"08:02"}
    assert Location.objects.filter(kind=Location.Kind.STORE).count() == 4
    assert Location.objects.filter(code="CENTRAL", kind=Location.Kind.CENTRAL).exists()
    assert Location.objects.filter(code="ONLINE", kind=Location.Kind.ONLINE).exists()


def test_stock_levels_equal_the_ledger(seeded):
    rows = Stock.objects.select_related("location")
    assert rows.count() == 3 * (1 + 4)
    for row in rows:
        ledger = StockMovement.objects.filter(location=row.location, sku=row.sku).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"), in_transit=Sum("in_transit_delta")
        )
        assert (row.on_hand, row.reserved, row.in_transit) == (
            ledger["on_hand"] or 0,
            ledger["reserved"] or 0,
            ledger["in_transit"] or 0,
        )
        assert row.on_hand == (5 if row.location.kind == Location.Kind.ONLINE else 2)
    assert set(StockMovement.objects.values_list("kind", flat=True)) == {StockMovement.Kind.RECEIPT}


def test_second_run_needs_reset_and_reset_replaces(seeded):
    with pytest.raises(CommandError, match="--reset"):
        call_command("seed_demo", customers=5, stores=2, stdout=StringIO(), stderr=StringIO())
    again = seed(customers=10, stores=2, online_units=3, store_units=1, reset=True)
    assert sorted(again.staff) == ["S001", "S002"]
    assert Store.objects.count() == 2
    assert Customer.objects.filter(account_number__startswith="D").count() == 10
    assert Customer.objects.filter(account_number__startswith="N").count() == 100
    assert Launch.objects.filter(slug="iphone-3g").count() == 1
    assert StaffMembership.objects.count() == 3
    assert PartnerAPIKey.objects.count() == 1
    assert not PartnerAPIKey.objects.is_valid(seeded.partner_key)
    assert PartnerAPIKey.objects.is_valid(again.partner_key)
    assert Stock.objects.get(location__code="ONLINE", sku__code="IP3G-8GB-BLACK").on_hand == 3


@pytest.mark.parametrize("option", [{"customers": -1}, {"stores": 0}, {"stores": 1000}, {"online_units": -5}])
def test_bad_options_are_refused(db, option):
    with pytest.raises(CommandError):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO(), **option)
    assert not Launch.objects.exists()


def test_create_partner_key_prints_a_working_key_last(seeded):
    out = StringIO()
    call_command("create_partner_key", "cpw", "--scope", "orders", stdout=out)
    key = out.getvalue().splitlines()[-1]
    assert PartnerAPIKey.objects.is_valid(key)
    assert PartnerAPIKey.objects.get_from_key(key).scope == PartnerAPIKey.Scope.ORDERS
    with pytest.raises(CommandError, match="No partner"):
        call_command("create_partner_key", "nobody", stdout=StringIO())


def test_a_retailer_cannot_be_given_a_deliveries_key(seeded):
    """Scopes follow the partner's kind: cpw is a retail chain, so no supplier key for it."""
    with pytest.raises(CommandError, match="retail partner"):
        call_command("create_partner_key", "cpw", "--scope", "deliveries", stdout=StringIO())
    partner = Partner.objects.get(code="cpw")
    with pytest.raises(ValueError):
        PartnerAPIKey.objects.create_key(name="x", partner=partner, scope=PartnerAPIKey.Scope.DELIVERIES)
    assert not PartnerAPIKey.objects.filter(scope=PartnerAPIKey.Scope.DELIVERIES).exists()


# --- seed_demo --story: an hour of the launch already lived -------------------------------


@pytest.fixture
def story(db):
    return seed(customers=600, stores=4, online_units=5, store_units=4, story=True)


def test_without_story_no_order_delivery_ticket_or_campaign(seeded):
    assert not Order.objects.exists()
    assert not Ticket.objects.exists()
    assert not Delivery.objects.exists()
    assert not Campaign.objects.exists()
    assert not Message.objects.exists()
    assert list(Launch.objects.values_list("slug", flat=True)) == ["iphone-3g"]


def test_story_prints_the_same_sign_in_lines(story):
    lines = story.stdout.splitlines()
    assert all(SIGN_IN_LINE.match(line) for line in lines), lines
    assert len(lines) == 1 + 4 + 1 + 1


def test_story_orders_arrive_over_the_last_hour_across_channels(story):
    launch = Launch.objects.get(slug="iphone-3g")
    orders = list(Order.objects.filter(launch=launch).order_by("sequence"))
    assert len(orders) > 50
    assert " 0 refused;" in story.stderr
    assert {o.channel for o in orders} == {Order.Channel.ONLINE, Order.Channel.PARTNER, Order.Channel.STORE}
    assert all(o.partner_id is not None for o in orders if o.channel == Order.Channel.PARTNER)
    created = [o.created_at for o in orders]
    assert launch.opens_at <= min(created) and max(created) <= timezone.now()
    assert max(created) - min(created) > datetime.timedelta(minutes=20)
    assert created == sorted(created), "first come is the server's sequence, and it follows time"
    # More orders in the first ten minutes than in the last ten: a spike at opening.
    first = sum(1 for c in created if c < launch.opens_at + datetime.timedelta(minutes=10))
    last = sum(1 for c in created if c > launch.opens_at + datetime.timedelta(minutes=50))
    assert first > last


def test_story_keeps_every_invariant(story):
    launch = Launch.objects.get(slug="iphone-3g")
    assert fcfs_violations(launch_id=launch.pk) == []
    assert oversold(launch_id=launch.pk) == []
    for row in Stock.objects.all():
        assert 0 <= row.reserved <= row.on_hand
        ledger = StockMovement.objects.filter(location=row.location, sku=row.sku).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
        )
        assert (row.on_hand, row.reserved) == (ledger["on_hand"] or 0, ledger["reserved"] or 0)


def test_story_sells_out_online_and_keeps_a_waitlist(story):
    online = Location.objects.get(code="ONLINE")
    black = Stock.objects.get(location=online, sku__code="IP3G-16GB-BLACK")
    assert black.on_hand - black.reserved == 0
    assert Order.objects.filter(
        pool=online, sku__code="IP3G-16GB-BLACK", status=Order.Status.WAITLISTED
    ).exists()
    # Another model still has units online, so a customer can still be served at once.
    assert any(s.on_hand > s.reserved for s in Stock.objects.filter(location=online))


def test_story_has_collect_orders_ready_handed_over_and_overdue(story):
    now = timezone.now()
    collect = Order.objects.filter(fulfilment=Order.Fulfilment.COLLECT)
    ready = collect.filter(status=Order.Status.ALLOCATED)
    assert ready.filter(collect_by__gt=now).exists()
    assert ready.filter(collect_by__lt=now).exists()  # overdue
    assert collect.filter(status=Order.Status.FULFILLED).exists()
    assert collect.filter(status=Order.Status.WAITLISTED).exists()
    assert StockMovement.objects.filter(kind=StockMovement.Kind.COLLECTION).count() == (
        collect.filter(status=Order.Status.FULFILLED).count()
    )


def test_story_walk_ins_were_served_and_some_wait(story):
    tickets = Ticket.objects.all()
    assert tickets.filter(status=Ticket.Status.SERVED).exists()
    assert tickets.filter(status=Ticket.Status.WAITING).exists()
    sales = StockMovement.objects.filter(kind=StockMovement.Kind.SALE).count()
    assert sales == tickets.filter(status=Ticket.Status.SERVED).count()
    launch = Launch.objects.get(slug="iphone-3g")
    assert all(launch.opens_at <= t.issued_at <= timezone.now() for t in tickets)


def test_story_has_an_announced_delivery_with_a_draft_plan(story):
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.ANNOUNCED
    assert delivery.expected_on > timezone.localdate()
    plan = AllocationPlan.objects.get(delivery=delivery)
    assert plan.status == AllocationPlan.Status.DRAFT
    delivered = dict(delivery.lines.values_list("sku_id", "quantity"))
    for sku_id, units in delivered.items():
        assert sum(plan.lines.filter(sku_id=sku_id).values_list("quantity", flat=True)) == units
    assert all(line.quantity < line.requested_quantity for line in delivery.lines.all())


def test_story_sent_the_apology_and_left_no_mail_pending(story):
    campaign = Campaign.objects.get(kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    apologies = Message.objects.filter(campaign=campaign)
    assert apologies.count() == Order.objects.filter(status=Order.Status.WAITLISTED).count() > 0
    assert set(apologies.values_list("status", flat=True)) == {Message.Status.SENT}
    # Nothing left for the demo server to print the first time someone orders.
    assert not Message.objects.exclude(status=Message.Status.SENT).exists()


def test_story_has_a_second_launch_open_for_registration(story):
    second = Launch.objects.get(slug="iphone-3g-pay-and-go")
    assert second.opens_at > timezone.now()
    assert UpgradeRegistration.objects.filter(launch=second).count() > 0
    assert not Order.objects.filter(launch=second).exists()


def test_reset_after_a_story_removes_all_of_it(story):
    again = seed(customers=10, stores=2, online_units=3, store_units=1, reset=True)
    assert sorted(again.staff) == ["S001", "S002"]
    assert list(Launch.objects.values_list("slug", flat=True)) == ["iphone-3g"]
    for model in (Order, Ticket, Delivery, Campaign, Message):
        assert not model.objects.exists(), model


def test_try_it_names_a_customer_who_can_order(story, tmp_path, live_server):
    sign_ins = tmp_path / "sign-ins.txt"
    sign_ins.write_text(story.stdout)
    out = StringIO()
    call_command("demo_try_it", sign_ins=str(sign_ins), url=live_server.url, wait=10, stdout=out)
    text = out.getvalue()
    username, password = story.staff["S001"]
    assert f"{username} / {password}" in text
    assert f"{story.head_office[0]} / {story.head_office[1]}" in text
    assert story.partner_key in text
    assert f"{live_server.url}/api/docs/" in text
    account, postcode = re.search(r"account (D\d{7}), postcode (.+)", text).groups()
    customer = Customer.objects.get(account_number=account, postcode=postcode.strip())
    assert not Order.objects.filter(customer=customer).exists()
    assert f"{live_server.url}/upgrade/iphone-3g/" in text
    assert text.rstrip().splitlines()[-1].startswith("=")
