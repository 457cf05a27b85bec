"""Head office's webhook pages: only head office, endpoints added, switched, rotated, replayed."""

import pytest
from django.urls import reverse

from orders.services.allocation import launch_allocate
from stores.models import StaffMembership, WebhookDelivery, WebhookEndpoint
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login
from stores.tests.webhook_world import world_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def head_office(client):
    user = UserFactory(username="ho")
    StaffMembership.objects.create(user=user, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, user)
    return client


def test_store_staff_get_403_and_anonymous_users_sign_in(client):
    assert client.get(reverse("webhook-list")).status_code == 302
    client.force_login(StaffMembershipFactory().user)
    assert client.get(reverse("webhook-list")).status_code == 403


def test_head_office_adds_an_endpoint_and_sees_its_secret_once(head_office, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    world = world_make(online_units=0)
    bad = head_office.post(
        reverse("webhook-list"),
        {"partner": world.partner.pk, "url": "ftp://x", "event_types": ["order.waitlisted"]},
    )
    assert bad.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert b"The URL must start with" in bad.content
    response = head_office.post(
        reverse("webhook-list"),
        {"partner": world.partner.pk, "url": "http://127.0.0.1:9/hook", "event_types": ["order.waitlisted"]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.encode() in response.content
    assert (
        endpoint.secret.encode()
        not in head_office.get(reverse("webhook-endpoint", args=[endpoint.pk])).content
    )
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    page = head_office.get(reverse("webhook-endpoint", args=[endpoint.pk]))
    assert b"order.waitlisted" in page.content and b"not yet tried" in page.content
    listing = head_office.get(reverse("webhook-list"))
    assert b"Carphone Warehouse" in listing.content


def test_head_office_switches_off_rotates_replays_and_retries(head_office, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    world = world_make(online_units=0)
    endpoint = world.endpoint("http://127.0.0.1:9/hook", types=["order.waitlisted"])
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    action = reverse("webhook-endpoint-action", args=[endpoint.pk])
    head_office.post(action, {"action": "disable"})
    endpoint.refresh_from_db()
    assert not endpoint.is_enabled and endpoint.disabled_reason == "head_office"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    page = head_office.post(reverse("webhook-delivery-retry", args=[delivery.pk]), follow=True)
    assert b"Switch the endpoint on" in page.content
    head_office.post(action, {"action": "enable"})
    head_office.post(action, {"action": "rotate"})
    endpoint.refresh_from_db()
    assert endpoint.is_enabled and endpoint.previous_secret
    head_office.post(reverse("webhook-delivery-retry", args=[delivery.pk]))
    assert WebhookDelivery.objects.get().status == "pending"
    page = head_office.post(action, {"action": "replay", "since": "2000-01-01 00:00"}, follow=True)
    assert b"1 event(s) queued again" in page.content
    page = head_office.post(action, {"action": "replay", "since": "soon"}, follow=True)
    assert b"Give the moment" in page.content
    assert head_office.post(action, {"action": "explode"}).status_code == 302
    assert head_office.get(reverse("webhook-endpoint", args=[999999])).status_code == 404
