"""Customers, registrations and the outbox refuse duplicates in the database itself."""

import pytest
from django.db import IntegrityError, transaction

from customers.models import Campaign, Customer, Message, UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.tests.factories import LaunchFactory, SKUFactory

pytestmark = pytest.mark.django_db


def rejects(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_account_numbers_are_unique():
    CustomerFactory(account_number="D0000001")
    rejects(
        lambda: Customer.objects.create(
            account_number="D0000001", name="x", email="x@example.com", postcode="X"
        )
    )


def test_one_registration_per_customer_per_launch():
    customer, launch, sku = CustomerFactory(), LaunchFactory(), SKUFactory()
    UpgradeRegistration.objects.create(customer=customer, launch=launch, preferred_sku=sku)
    rejects(lambda: UpgradeRegistration.objects.create(customer=customer, launch=launch, preferred_sku=sku))
    # The same customer may register for another launch.
    UpgradeRegistration.objects.create(customer=customer, launch=LaunchFactory(), preferred_sku=sku)


def test_message_dedupe_keys_are_unique():
    customer = CustomerFactory()
    Message.objects.create(kind=Message.Kind.ORDER_RECEIVED, dedupe_key="order_received:1", customer=customer)
    rejects(
        lambda: Message.objects.create(
            kind=Message.Kind.ORDER_RECEIVED, dedupe_key="order_received:1", customer=customer
        )
    )
    assert Message.objects.filter(dedupe_key="order_received:1").count() == 1


def test_a_campaign_runs_once_per_launch_kind_and_audience():
    launch = LaunchFactory()
    Campaign.objects.create(launch=launch, kind="apology", audience=Campaign.Audience.WAITLISTED)
    rejects(
        lambda: Campaign.objects.create(launch=launch, kind="apology", audience=Campaign.Audience.WAITLISTED)
    )
