"""Who may see which store. Shared by views, the API and templates."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet

from stores.models import StaffMembership, Store


def _signed_in(user: AbstractBaseUser | AnonymousUser) -> User | None:
    """The User behind a request's user, or None when nobody is signed in."""
    if not user.is_authenticated:
        return None
    # The project keeps Django's default AUTH_USER_MODEL, so the authentication backend
    # only ever signs in a User: an authenticated request.user is always one.
    assert isinstance(user, User)
    return user


def user_is_head_office(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    signed_in = _signed_in(user)
    if signed_in is None:
        return False
    if signed_in.is_superuser:
        return True
    return StaffMembership.objects.filter(user=signed_in, role=StaffMembership.Role.HEAD_OFFICE).exists()


def stores_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Store]:
    """Every store for head office; otherwise only the stores the user works in."""
    if user_is_head_office(user=user):
        return Store.objects.all()
    signed_in = _signed_in(user)
    if signed_in is None:
        return Store.objects.none()
    return Store.objects.filter(memberships__user=signed_in).distinct()


def user_may_see_store(*, user: AbstractBaseUser | AnonymousUser, store: Store) -> bool:
    return stores_for_user(user=user).filter(pk=store.pk).exists()
