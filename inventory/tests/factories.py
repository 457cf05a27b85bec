import factory

from inventory.models import SKU, Location, Product


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
