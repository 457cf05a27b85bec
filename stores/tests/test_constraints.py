"""The stores tables refuse what they must, in the database itself."""

import pytest
from django.db import IntegrityError, transaction

from stores.models import Partner, StaffMembership, Store
from stores.tests.factories import PartnerFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


def rejects(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_a_user_is_member_of_a_store_once():
    user, store = UserFactory(), StoreFactory()
    StaffMembership.objects.create(user=user, store=store, role=StaffMembership.Role.STAFF)
    rejects(lambda: StaffMembership.objects.create(user=user, store=store, role=StaffMembership.Role.MANAGER))


@pytest.mark.parametrize("role", [StaffMembership.Role.STAFF, StaffMembership.Role.MANAGER])
def test_store_roles_must_name_a_store(role):
    rejects(lambda: StaffMembership.objects.create(user=UserFactory(), store=None, role=role))
    StaffMembership.objects.create(user=UserFactory(), store=StoreFactory(), role=role)


def test_head_office_role_must_not_name_a_store():
    rejects(
        lambda: StaffMembership.objects.create(
            user=UserFactory(), store=StoreFactory(), role=StaffMembership.Role.HEAD_OFFICE
        )
    )
    StaffMembership.objects.create(user=UserFactory(), store=None, role=StaffMembership.Role.HEAD_OFFICE)


def test_store_and_partner_codes_are_unique():
    StoreFactory(code="S900")
    rejects(lambda: Store.objects.create(code="S900", name="Again"))
    PartnerFactory(code="dup")
    rejects(lambda: Partner.objects.create(code="dup", name="Again"))
