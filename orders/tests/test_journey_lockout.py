"""Issue 12: the order form's account number + postcode check is a sign-in, and guessing
postcodes is locked out like a password (django-axes, per account number and IP address).

After AXES_FAILURE_LIMIT wrong postcodes for one account from one address, even the right
postcode is refused with the lockout message until the cool-off; the same account from
another address, and another account from the same address (a whole shop or office
behind one IP), are not locked.
"""

import datetime

import pytest
import time_machine
from django.urls import reverse

from orders.forms import NO_MATCH
from orders.models import Order
from orders.tests.test_journey_pages import move_window, order_post, text

pytestmark = pytest.mark.django_db

LOCKED = "Too many tries with that account number from here."
OFFICE = "203.0.113.7"
ELSEWHERE = "198.51.100.9"
START = datetime.datetime(2026, 7, 11, 8, 0, tzinfo=datetime.UTC)


def place(client, launch, *, account="D0000001", postcode="SW1A 1AA", ip=OFFICE):
    return client.post(
        reverse("journey-order-place", kwargs={"slug": launch.slug}),
        order_post(account=account, postcode=postcode),
        REMOTE_ADDR=ip,
    )


def test_wrong_postcodes_lock_the_account_from_that_address_until_the_cool_off(
    client, launch_with_stock, settings
):
    with time_machine.travel(START, tick=False):
        launch, *_ = launch_with_stock(online_units=5)
        limit = settings.AXES_FAILURE_LIMIT
        for _ in range(limit - 1):
            wrong = place(client, launch, postcode="EC1A 1BB")
            assert wrong.status_code == 200 and NO_MATCH in text(wrong)
        # The failure that reaches the limit, and every try after it, says so in the form.
        for postcode in ("EC1A 1BB", "SW1A 1AA"):
            locked = place(client, launch, postcode=postcode)
            assert locked.status_code == 200, locked.status_code
            words = text(locked)
            assert LOCKED in words and NO_MATCH not in words
            minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
            assert f"Please wait {minutes} minutes" in words
        assert not Order.objects.exists()

        # Not the whole address: another customer in the same office orders.
        colleague = place(client, launch, account="D0000002")
        assert colleague.status_code == 302
        # Not the account everywhere: the customer at home is not locked out.
        at_home = place(client, launch, ip=ELSEWHERE)
        assert at_home.status_code == 302
        assert sorted(Order.objects.values_list("customer__account_number", flat=True)) == [
            "D0000001",
            "D0000002",
        ]


def test_the_lockout_ends_after_the_cool_off(client, launch_with_stock, settings):
    with time_machine.travel(START, tick=False) as clock:
        launch, *_ = launch_with_stock(online_units=5)
        for _ in range(settings.AXES_FAILURE_LIMIT):
            place(client, launch, postcode="EC1A 1BB")
        assert LOCKED in text(place(client, launch))
        clock.shift(settings.AXES_COOLOFF_TIME - datetime.timedelta(seconds=5))
        assert LOCKED in text(place(client, launch))
        assert not Order.objects.exists()
        clock.shift(datetime.timedelta(seconds=10))
        after = place(client, launch)
        assert after.status_code == 302
        assert Order.objects.get().customer.account_number == "D0000001"


def test_the_account_number_is_one_account_whatever_its_case(client, launch_with_stock, settings):
    # Guessing with "d0000001" and " D0000001 " counts against the same account.
    with time_machine.travel(START, tick=False):
        launch, *_ = launch_with_stock(online_units=5)
        spellings = ["d0000001", " D0000001 ", "D0000001"]
        for i in range(settings.AXES_FAILURE_LIMIT):
            place(client, launch, account=spellings[i % len(spellings)], postcode="EC1A 1BB")
        assert LOCKED in text(place(client, launch))
        assert not Order.objects.exists()


def test_the_registration_form_shares_the_lockout(client, launch_with_stock, settings):
    with time_machine.travel(START, tick=False):
        launch, sku, *_ = launch_with_stock(online_units=5)
        for _ in range(settings.AXES_FAILURE_LIMIT):
            place(client, launch, postcode="EC1A 1BB")
        # The registration page (before the window) checks the same pair the same way.
        move_window(launch, opens_in=datetime.timedelta(days=2))
        response = client.post(
            reverse("journey-register", kwargs={"slug": launch.slug}),
            {
                "account_number": "D0000001",
                "postcode": "SW1A 1AA",
                "preferred_sku": sku.code,
                "preferred_store": "",
            },
            REMOTE_ADDR=OFFICE,
        )
        assert LOCKED in text(response)
