"""Eligibility: the in-process tier answers hits without a round trip, and never refuses
a customer the database would accept."""

import pytest
from django.core.cache import cache

from customers.models import Customer, UpgradeRegistration
from customers.services.registration import _eligibility_key, eligible_customer_id
from customers.tests.factories import CustomerFactory
from inventory.tests.factories import LaunchFactory, SKUFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def launch():
    return LaunchFactory(slug="elig", skus=[SKUFactory(code="ELIG-1")])


def register(launch, account: str, **customer) -> Customer:
    person = CustomerFactory(account_number=account, **customer)
    UpgradeRegistration.objects.create(customer=person, launch=launch, preferred_sku=launch.skus.get())
    return person


def test_a_loaded_launch_answers_from_the_process_without_a_query(launch, django_assert_num_queries):
    person = register(launch, "A0000001")
    assert eligible_customer_id(launch_id=launch.pk, account_number="A0000001") == person.pk
    cache.delete(_eligibility_key(launch.pk, "A0000001"))  # nothing in the shared tier either
    with django_assert_num_queries(0):
        assert eligible_customer_id(launch_id=launch.pk, account_number="A0000001") == person.pk


def test_a_registration_made_after_the_load_is_accepted_at_once(launch):
    register(launch, "A0000001")
    eligible_customer_id(launch_id=launch.pk, account_number="A0000001")  # loads the tier
    late = register(launch, "A0000002")
    assert eligible_customer_id(launch_id=launch.pk, account_number="A0000002") == late.pk


def test_unregistered_and_suspended_customers_are_not_eligible(launch):
    register(launch, "A0000001", contract_status=Customer.ContractStatus.SUSPENDED)
    CustomerFactory(account_number="A0000002")
    assert eligible_customer_id(launch_id=launch.pk, account_number="A0000001") is None
    assert eligible_customer_id(launch_id=launch.pk, account_number="A0000002") is None
    assert eligible_customer_id(launch_id=launch.pk, account_number="NOBODY") is None


def test_the_process_tier_can_be_switched_off(launch, settings, django_assert_num_queries):
    settings.ELIGIBILITY_IN_PROCESS = False
    person = register(launch, "A0000001")
    cache.delete(_eligibility_key(launch.pk, "A0000001"))
    with django_assert_num_queries(1):  # straight to the database, then the shared cache
        assert eligible_customer_id(launch_id=launch.pk, account_number="A0000001") == person.pk


def test_warming_loads_the_open_launches_so_the_first_order_needs_no_query(launch, django_assert_num_queries):
    from orders.services.catalogue import admission_warm

    person = register(launch, "A0000001")
    assert admission_warm() == 1
    cache.delete(_eligibility_key(launch.pk, "A0000001"))
    with django_assert_num_queries(0):
        assert eligible_customer_id(launch_id=launch.pk, account_number="A0000001") == person.pk


def test_many_at_once_ask_each_tier_once_and_agree_with_one_at_a_time(launch, django_assert_num_queries):
    from customers.services.registration import eligible_customers

    early = register(launch, "A0000001")
    eligible_customer_id(launch_id=launch.pk, account_number="A0000001")  # loads the process tier
    late = register(launch, "A0000002")  # after the load: only the database knows yet
    register(launch, "A0000003", contract_status=Customer.ContractStatus.SUSPENDED)
    wanted = ["A0000001", "A0000002", "A0000003", "NOBODY"]
    with django_assert_num_queries(1):  # one query for everything the caches lack
        found = eligible_customers(launch_id=launch.pk, account_numbers=wanted)
    assert {n: e.customer_id for n, e in found.items()} == {"A0000001": early.pk, "A0000002": late.pk}
    assert {n: e.customer_id for n, e in found.items()} == {
        n: cid for n in wanted if (cid := eligible_customer_id(launch_id=launch.pk, account_number=n))
    }


def test_the_postcode_proves_the_customer_in_every_tier_and_no_cache_holds_it(launch, settings):
    from customers.services.registration import eligible_customer

    person = register(launch, "A0000001", postcode="SW1A 1AA")
    for in_process in (True, False):
        settings.ELIGIBILITY_IN_PROCESS = in_process
        for _ in range(2):  # from the database, then from the tier it filled
            assert (
                eligible_customer_id(launch_id=launch.pk, account_number="A0000001", postcode="sw1a1aa")
                == person.pk
            )
            assert (
                eligible_customer_id(launch_id=launch.pk, account_number="A0000001", postcode="SW1A 1AB")
                is None
            )
    cached = cache.get(_eligibility_key(launch.pk, "A0000001"))
    assert cached == eligible_customer(launch_id=launch.pk, account_number="A0000001").customer_id << 32 | (
        cached & 0xFFFFFFFF
    )
    assert "SW1A" not in str(cached)


def test_a_new_secret_key_never_reads_digests_made_with_the_old_one(launch, settings):
    """Postcode digests are keyed by SECRET_KEY: after a rotation, an entry digested under
    the old key would refuse the right postcode until it expired."""
    settings.ELIGIBILITY_IN_PROCESS = False
    person = register(launch, "A0000001", postcode="SW1A 1AA")
    assert (
        eligible_customer_id(launch_id=launch.pk, account_number="A0000001", postcode="SW1A 1AA") == person.pk
    )
    old_key = _eligibility_key(launch.pk, "A0000001")
    assert cache.get(old_key)
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 50
    assert _eligibility_key(launch.pk, "A0000001") != old_key
    assert (
        eligible_customer_id(launch_id=launch.pk, account_number="A0000001", postcode="SW1A 1AA") == person.pk
    )
