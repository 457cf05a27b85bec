import datetime

import factory
from django.utils import timezone

from inventory.models import SKU, Launch, Location, Product


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("code",)

    code = "IP3G"
    name = "iPhone 3G"


class SKUFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SKU
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"SKU-{n}")
    product = factory.SubFactory(ProductFactory)
    name = factory.LazyAttribute(lambda o: f"iPhone 3G {o.code}")


def online_pool() -> Location:
    return Location.objects.get_or_create(code="ONLINE", defaults={"kind": Location.Kind.ONLINE})[0]


def central_warehouse() -> Location:
    return Location.objects.get_or_create(code="CENTRAL", defaults={"kind": Location.Kind.CENTRAL})[0]


def store_location(store) -> Location:
    return Location.objects.get_or_create(
        store=store, defaults={"code": store.code, "kind": Location.Kind.STORE}
    )[0]


class LaunchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Launch
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"launch-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    opens_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(hours=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=7))

    @factory.post_generation
    def skus(self, create, extracted, **kwargs):
        if create and extracted:
            self.skus.set(extracted)
