"""Every URL pattern, every kind of caller, every nasty path value: no 500, no other
store's data, no write (issue 12, "What it must show").

The URL list is walked from the resolver, so a new URL is covered the day it is added.
Each path parameter is replaced by NUL, a lone surrogate (as a client sends it: its UTF-8
bytes), 5,000 characters, "../", and another store's real code. Pages are visited by
anonymous users, staff of an own store, staff of a partner store and head office (with its
second factor); /api/ by no key, a wrong key, a revoked key, a key of the other scope and
a good key. GET for everyone, POST for everyone but head office (who may act on any store).
"""

from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from customers.models import Customer, Message
from inventory.models import Delivery, ReceiptOverCount, StockMovement
from orders.models import Order, Ticket
from stores.models import Partner, PartnerAPIKey, Store
from stores.tests.conftest import seed
from stores.tests.factories import second_factor_proved

pytestmark = [pytest.mark.django_db]

NASTY = {
    "nul": "%00",
    "surrogate": "%ED%B0%80",
    "long": "x" * 5000,
    "dotdot": quote("../", safe=""),
}


def routes() -> list[tuple[str, list[str]]]:
    """Every route of the project: (route with <converter:name> parts, its parameter names)."""
    found: list[tuple[str, list[str]]] = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                found.append((route, list(getattr(p.pattern, "converters", {}))))

    walk(get_resolver().url_patterns, "")
    # Regular-expression routes (the admin's few, the API's catch-all): their text is not a path.
    return [(r, names) for r, names in found if "(?P" not in r and not r.startswith("^")]


def fill(route: str, value: str) -> str:
    import re

    return "/" + re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: value, route)


def counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(),
        "tickets": Ticket.objects.count(),
        "movements": StockMovement.objects.count(),
        "deliveries": Delivery.objects.count(),
        "over_counts": ReceiptOverCount.objects.count(),
        "messages": Message.objects.count(),
        "opted_out": Customer.objects.filter(marketing_opt_out=True).count(),
        "keys": PartnerAPIKey.objects.count(),
    }


@pytest.fixture
def world():
    sign_ins = seed(customers=40, stores=4, online_units=5, store_units=2, story=True)
    own, partner_store = sign_ins.staff["S001"], sign_ins.staff["S004"]
    assert Store.objects.get(code="S004").partner_id is not None
    cpw = Partner.objects.get(code="cpw")
    revoked_key_row, revoked = PartnerAPIKey.objects.create_key(name="old", partner=cpw)
    revoked_key_row.revoked = True
    revoked_key_row.save()
    supplier = Partner.objects.create(code="apple", name="Apple", kind=Partner.Kind.SUPPLIER)
    _, deliveries_key = PartnerAPIKey.objects.create_key(name="d", partner=supplier, scope="deliveries")
    clients = {}
    for role, username in (
        ("staff", own[0]),
        ("partner-staff", partner_store[0]),
        ("head", sign_ins.head_office[0]),
    ):
        client = Client()
        user = User.objects.get(username=username)
        client.force_login(user)
        if role == "head":
            second_factor_proved(client, user)
        clients[role] = client
    clients["anonymous"] = Client()
    keys = {
        "no key": "",
        "wrong key": "Api-Key abcdefgh.abcdefghijklmnopqrstuvwxyzabcdef",
        "revoked key": f"Api-Key {revoked}",
        "other-scope key": f"Api-Key {deliveries_key}",
        "good key": f"Api-Key {sign_ins.partner_key}",
    }
    return clients, keys


def test_no_path_value_from_no_caller_makes_a_500_leaks_another_store_or_writes(world):
    clients, keys = world
    other_store = "S002"  # a real store: the own-store staff (S001) and the partner's (S004) may not see it
    values = {**NASTY, "another store": other_store}
    before = counts()
    problems: list[str] = []
    visited = 0
    for route, params in routes():
        if not params:
            continue
        for label, value in values.items():
            url = fill(route, value)
            if route.startswith("api/"):
                callers = [
                    (name, Client(), {"HTTP_AUTHORIZATION": header} if header else {})
                    for name, header in keys.items()
                ]
            elif route.startswith("admin/"):
                # Django's admin lets in nobody but staff with a second factor: head office, and
                # store staff as the one who must be turned away. GET is enough for its views.
                callers = [(role, clients[role], {}) for role in ("head", "staff")]
            else:
                callers = [(role, client, {}) for role, client in clients.items()]
            for who, client, headers in callers:
                methods = ["get"] if who == "head" or route.startswith("admin/") else ["get", "post"]
                for method in methods:
                    response = getattr(client, method)(url, **headers)
                    visited += 1
                    where = f"{method.upper()} {url[:80]} as {who} ({label})"
                    if response.status_code >= 500:
                        problems.append(f"{where}: {response.status_code}")
                    elif (
                        label == "another store" and who in ("staff", "partner-staff") and "<store:" in route
                    ) and response.status_code not in (403, 404, 405):
                        problems.append(f"{where}: {response.status_code}, not refused")
    assert problems == [], "\n".join(problems[:40])
    assert counts() == before
    assert visited > 300
