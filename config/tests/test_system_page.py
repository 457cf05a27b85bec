"""Head office's System page: the live figures of the morning, from the database and the
stack's counters, in a panel htmx polls; nobody but head office sees it."""

import re
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import Message
from customers.tests.factories import CustomerFactory
from inventory.services import location_online_pool
from orders.models import Order
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">(.*?)</dd>', html, re.S)
    assert found, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


@pytest.fixture
def head(client):
    user = UserFactory(username="head")
    StaffMembership.objects.create(user=user, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, user)
    return client


def test_the_panel_shows_the_backlog_the_database_holds(head, launch_with_sku):
    launch, sku = launch_with_sku
    customers = [CustomerFactory() for _ in range(3)]
    online = location_online_pool()
    Order.objects.bulk_create(
        [
            Order(
                reference=f"SYS{n:05d}",
                launch=launch,
                customer=c,
                sku=sku,
                channel=Order.Channel.PARTNER,
                fulfilment=Order.Fulfilment.DELIVERY,
                pool=online,
                created_at=timezone.now() - timezone.timedelta(seconds=30),
            )
            for n, c in enumerate(customers)
        ]
    )
    Message.objects.create(kind=Message.Kind.APOLOGY, dedupe_key="sys-1", customer=customers[0])
    Message.objects.create(
        kind=Message.Kind.APOLOGY, dedupe_key="sys-2", customer=customers[1], status=Message.Status.FAILED
    )

    page = head.get(reverse("system"))
    assert page.status_code == 200
    html = page.text
    assert 'hx-trigger="every 2s"' in html and "<h1>System</h1>" in html
    assert field(html, "queued") == "3"
    assert float(field(html, "allocator_lag").removesuffix(" s")) >= 29
    assert field(html, "outbox_depth") == "1"
    assert field(html, "emails_failed") == "1"
    assert field(html, "webhooks_failed") == "0"
    for service in ("PostgreSQL", "Redis", "Celery broker"):
        assert f'data-service="{service}"' in html
    assert 'data-field="ready">ready</span>' in html

    fragment = head.get(reverse("system"), HTTP_HX_REQUEST="true").text
    assert "<h1>" not in fragment and 'id="system-panel"' in fragment


def test_only_head_office_sees_the_system_page(client):
    url = reverse("system")
    assert client.get(url).status_code == 302  # to sign in
    client.force_login(StaffMembershipFactory().user)
    assert client.get(url).status_code == 403


def test_the_panel_asks_the_services_once_a_second_per_process_not_on_every_poll(monkeypatch):
    """Ten screens polling every 2 s would open three connections each per poll; within
    READINESS_SHARED_SECONDS the answer is shared, and after it the services are asked again."""
    from config import watch

    asked = []
    real = watch.readiness

    def counted_readiness() -> dict[str, str]:
        asked.append(1)
        return real()

    monkeypatch.setattr(watch, "readiness", counted_readiness)
    monkeypatch.setattr(watch, "_shared_readiness", None)
    monkeypatch.setattr(watch, "READINESS_SHARED_SECONDS", 0.5)
    first = watch.readiness_shared()
    assert watch.readiness_shared() == first and len(asked) == 1
    time.sleep(0.6)
    watch.readiness_shared()
    assert len(asked) == 2
