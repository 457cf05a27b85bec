"""seed_demo prints the sign-ins of API.md and seeds exactly the data it promises."""

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import Sum

from customers.models import Customer, UpgradeRegistration
from inventory.models import Launch, Location, Stock, StockMovement
from stores.models import PartnerAPIKey, StaffMembership, Store
from stores.tests.conftest import seed

pytestmark = pytest.mark.django_db

SIGN_IN_LINE = re.compile(r"^(partner cpw \S+|staff staff-s\d{3} \S+ S\d{3}|head-office \S+ \S+)$")


def test_prints_one_line_per_sign_in_and_nothing_else(seeded):
    lines = seeded.stdout.splitlines()
    assert all(SIGN_IN_LINE.match(line) for line in lines), lines
    assert [line.split()[0] for line in lines].count("partner") == 1
    assert [line.split()[0] for line in lines].count("head-office") == 1
    assert sorted(seeded.staff) == ["S001", "S002", "S003", "S004"]
    assert len(lines) == 1 + 4 + 1


def test_printed_passwords_sign_in(seeded):
    for store_code, (username, password) in seeded.staff.items():
        user = authenticate(username=username, password=password)
        assert user is not None
        assert StaffMembership.objects.get(user=user).store.code == store_code
    head = authenticate(username=seeded.head_office[0], password=seeded.head_office[1])
    assert head is not None
    assert StaffMembership.objects.get(user=head).role == StaffMembership.Role.HEAD_OFFICE
    assert authenticate(username=seeded.head_office[0], password="wrong") is None


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
    call_command("create_partner_key", "cpw", "--scope", "deliveries", stdout=out)
    key = out.getvalue().splitlines()[-1]
    assert PartnerAPIKey.objects.is_valid(key)
    assert PartnerAPIKey.objects.get_from_key(key).scope == PartnerAPIKey.Scope.DELIVERIES
    with pytest.raises(CommandError, match="No partner"):
        call_command("create_partner_key", "nobody", stdout=StringIO())
