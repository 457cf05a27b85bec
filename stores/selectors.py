"""Who may see which store. Shared by views, the API and templates."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from stores.models import StaffMembership, Store


def user_is_head_office(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return StaffMembership.objects.filter(user=user, role=StaffMembership.Role.HEAD_OFFICE).exists()


def stores_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Store]:
    """Every store for head office; otherwise only the stores the user works in."""
    if user_is_head_office(user=user):
        return Store.objects.all()
    if not user.is_authenticated:
        return Store.objects.none()
    return Store.objects.filter(memberships__user=user).distinct()


def user_may_see_store(*, user: AbstractBaseUser | AnonymousUser, store: Store) -> bool:
    return stores_for_user(user=user).filter(pk=store.pk).exists()
