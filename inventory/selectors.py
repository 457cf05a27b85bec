"""Reads of stock and locations shared by several callers."""

from django.db.models import F, QuerySet

from inventory.models import Location, Stock


def location_online_pool() -> Location:
    return Location.objects.get_or_create(code="ONLINE", defaults={"kind": Location.Kind.ONLINE})[0]


def location_central() -> Location:
    return Location.objects.get_or_create(code="CENTRAL", defaults={"kind": Location.Kind.CENTRAL})[0]


def location_for_store(*, store) -> Location:
    return Location.objects.get_or_create(
        store=store, defaults={"code": store.code, "kind": Location.Kind.STORE}
    )[0]


def stock_at(*, location: Location) -> QuerySet[Stock]:
    """Stock rows of one location with `available` computed, in SKU order."""
    return (
        Stock.objects.filter(location=location)
        .select_related("sku")
        .annotate(available_units=F("on_hand") - F("reserved"))
        .order_by("sku__code")
    )
