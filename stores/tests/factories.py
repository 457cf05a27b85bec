import factory
from django.contrib.auth import get_user_model

from stores.models import Partner, StaffMembership, Store


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery")


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"partner{n}")
    name = factory.LazyAttribute(lambda o: o.code.upper())


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    code = factory.Sequence(lambda n: f"T{n:03d}")
    name = factory.LazyAttribute(lambda o: f"Store {o.code}")
    region = "London"


class StaffMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffMembership

    user = factory.SubFactory(UserFactory)
    store = factory.SubFactory(StoreFactory)
    role = StaffMembership.Role.STAFF


def second_factor_proved(client, user) -> None:
    """As if `user` had entered a one-time code in this client's session (django-otp keeps
    the proving device's id in the session): what head office needs on top of a password."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    device, _ = StaticDevice.objects.get_or_create(user=user, name="Test codes", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def head_office_login(client, user) -> None:
    """Signed in with a password and a second factor, as head office must be."""
    client.force_login(user)
    second_factor_proved(client, user)
