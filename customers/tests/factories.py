import factory

from customers.models import Customer, UpgradeRegistration


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        django_get_or_create = ("account_number",)

    account_number = factory.Sequence(lambda n: f"C{n:07d}")
    name = factory.Faker("name", locale="en_GB")
    email = factory.LazyAttribute(lambda o: f"{o.account_number.lower()}@example.com")
    postcode = "SW1A 1AA"
    current_device = "iPhone 2G"


class RegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpgradeRegistration

    customer = factory.SubFactory(CustomerFactory)
    launch = None
    preferred_sku = None
    preferred_store = None
