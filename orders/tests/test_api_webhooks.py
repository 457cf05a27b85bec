"""The partner API's webhooks (scope `webhooks`): endpoints, rotation, the delivery log,
retries and replays; only the caller's own, bad input answered with the envelope."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from orders.services.allocation import launch_allocate
from orders.tests.api_support import assert_envelope, partner_caller
from stores.models import PartnerAPIKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from stores.tests.webhook_world import world_make

pytestmark = [pytest.mark.services, pytest.mark.django_db]

ENDPOINTS = "/api/v1/webhooks/endpoints/"
DELIVERIES = "/api/v1/webhooks/deliveries/"


@pytest.fixture
def caller(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # deliveries stay in the log, unsent
    return partner_caller(code="cpw", scope=PartnerAPIKey.Scope.WEBHOOKS)


def create(caller, **overrides):
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.allocated", "order.waitlisted"]}
    body.update(overrides)
    return caller.client.post(ENDPOINTS, body, format="json")


def test_only_a_webhooks_key_may_manage_endpoints():
    orders_key = partner_caller(code="other", scope=PartnerAPIKey.Scope.ORDERS)
    assert_envelope(orders_key.client.get(ENDPOINTS), 403, "permission_denied")
    assert_envelope(Client().get(ENDPOINTS), 401, "not_authenticated")


def test_create_shows_the_secret_once_and_lists_without_it(caller):
    response = create(caller, description="order status")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    assert created["event_types"] == ["order.waitlisted", "order.allocated"]  # published order
    listed = caller.client.get(ENDPOINTS).json()["results"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    assert "secret" not in caller.client.get(f"{ENDPOINTS}{created['id']}").json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x", "event_types": ["order.allocated"]}, "url"),
        ({"url": "http://user:pw@example.com/x", "event_types": ["order.allocated"]}, "url"),
        ({"url": "http://10.0.0.8/hook", "event_types": ["order.allocated"]}, "url"),
        ({"url": "http://[::1", "event_types": ["order.allocated"]}, "url"),
        ({"url": 42, "event_types": ["order.allocated"]}, "url"),
        ({"url": "http://example.com/x", "event_types": []}, "event_types"),
        ({"url": "http://example.com/x", "event_types": ["order.shipped"]}, "event_types"),
        ({"url": "http://example.com/x", "event_types": "order.allocated"}, "event_types"),
        ({"url": "http://example.com/x", "event_types": [["x"]]}, "event_types"),
        ({"url": "http://example.com/x", "event_types": ["order.allocated"], "colour": "red"}, "colour"),
        (
            {"url": "http://example.com/x", "event_types": ["order.allocated"], "description": 7},
            "description",
        ),
    ],
)
def test_bad_endpoints_get_the_envelope_and_nothing_is_written(caller, body, field):
    error = assert_envelope(caller.client.post(ENDPOINTS, body, format="json"), 400, "validation_error")
    assert field in error["details"]
    assert not WebhookEndpoint.objects.exists()


def test_a_body_that_is_not_an_object_is_invalid_json(caller):
    assert_envelope(
        caller.client.post(ENDPOINTS, "[1]", content_type="application/json"), 400, "invalid_json"
    )
    assert_envelope(caller.client.post(ENDPOINTS, "{", content_type="application/json"), 400, "invalid_json")


def test_patch_switches_off_and_on_and_changes_types(caller):
    pk = create(caller).json()["id"]
    url = f"{ENDPOINTS}{pk}"
    off = caller.client.patch(url, {"enabled": False}, format="json").json()
    assert off["enabled"] is False and off["disabled_reason"] == "partner"
    on = caller.client.patch(url, {"enabled": True, "event_types": ["order.cancelled"]}, format="json").json()
    assert (
        on["enabled"] is True and on["disabled_reason"] is None and on["event_types"] == ["order.cancelled"]
    )
    assert_envelope(caller.client.patch(url, {"enabled": "yes"}, format="json"), 400, "validation_error")
    assert_envelope(caller.client.patch(url, {"url": None}, format="json"), 400, "validation_error")


def test_rotation_answers_the_new_secret_and_when_the_old_one_stops(caller):
    created = create(caller).json()
    rotated = caller.client.post(f"{ENDPOINTS}{created['id']}/rotate-secret").json()
    assert rotated["secret"] != created["secret"]
    expires = datetime.datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs((expires - timezone.now()).total_seconds() - 86400) < 60
    assert WebhookEndpoint.objects.get().previous_secret == created["secret"]


def test_another_partners_endpoints_and_deliveries_are_not_found(caller):
    theirs = partner_caller(code="phones4u", scope=PartnerAPIKey.Scope.WEBHOOKS)
    pk = create(theirs).json()["id"]
    for method, path in [
        ("get", f"{ENDPOINTS}{pk}"),
        ("patch", f"{ENDPOINTS}{pk}"),
        ("delete", f"{ENDPOINTS}{pk}"),
        ("post", f"{ENDPOINTS}{pk}/rotate-secret"),
        ("post", f"{ENDPOINTS}{pk}/replay"),
        ("get", f"{ENDPOINTS}not-a-number"),
        ("get", f"{ENDPOINTS}99999999999999999999999"),
        ("get", f"{DELIVERIES}abc"),
        ("post", f"{DELIVERIES}12/retry"),
    ]:
        response = getattr(caller.client, method)(path, {}, format="json")
        assert_envelope(response, 404, "not_found")
    assert WebhookEndpoint.objects.get(pk=pk).is_enabled


def test_delivery_log_lists_attempts_retries_and_replays(caller):
    world = world_make(online_units=0)
    endpoint = world.endpoint("http://127.0.0.1:9/hook", partner=caller.partner, types=["order.waitlisted"])
    for n in range(3):
        world.order(n, partner=caller.partner)
    launch_allocate(launch_id=world.launch.pk)
    delivery = WebhookDelivery.objects.order_by("id").first()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=1, last_status_code=500)
    WebhookAttempt.objects.create(
        delivery=delivery, status_code=500, response_body="boom", request_headers={"webhook-id": "x"}
    )
    page = caller.client.get(DELIVERIES, {"status": "failed"}).json()
    assert page["count"] == 1 and page["results"][0]["webhook_id"].startswith("msg_")
    detail = caller.client.get(f"{DELIVERIES}{delivery.pk}").json()
    assert detail["attempt_log"][0]["response_body"] == "boom"
    assert detail["payload"]["type"] == "order.waitlisted" and detail["payload"]["data"][
        "queue_position"
    ] in (1, 2, 3)
    retried = caller.client.post(f"{DELIVERIES}{delivery.pk}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    assert caller.client.get(DELIVERIES, {"endpoint": endpoint.pk}).json()["count"] == 3
    assert_envelope(caller.client.get(DELIVERIES, {"status": "lost"}), 400, "validation_error")
    assert_envelope(caller.client.get(DELIVERIES, {"endpoint": "x"}), 400, "validation_error")
    assert_envelope(caller.client.get(DELIVERIES, {"cursor": "zzz"}), 400, "validation_error")

    since = (timezone.now() - datetime.timedelta(hours=1)).isoformat()
    replay = caller.client.post(f"{ENDPOINTS}{endpoint.pk}/replay", {"since": since}, format="json")
    assert replay.status_code == 202 and replay.json() == {"replayed": 3}
    replayed = caller.client.get(DELIVERIES).json()["results"]
    ids = [d["webhook_id"] for d in replayed]
    assert len(ids) == 6 and len(set(ids)) == 3  # each event twice, with its own webhook-id
    for body in [
        {},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"since": since, "until": since},
    ]:
        assert_envelope(
            caller.client.post(f"{ENDPOINTS}{endpoint.pk}/replay", body, format="json"),
            400,
            "validation_error",
        )
    caller.client.patch(f"{ENDPOINTS}{endpoint.pk}", {"enabled": False}, format="json")
    assert_envelope(
        caller.client.post(f"{ENDPOINTS}{endpoint.pk}/replay", {"since": since}, format="json"),
        400,
        "validation_error",
    )
    assert_envelope(caller.client.post(f"{DELIVERIES}{delivery.pk}/retry"), 400, "validation_error")


def test_delete_removes_the_endpoint_and_its_log(caller):
    pk = create(caller).json()["id"]
    assert caller.client.delete(f"{ENDPOINTS}{pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_schema_documents_the_webhooks_paths_and_every_event_in_its_webhooks_object():
    schema = Client().get("/api/schema/").json()
    assert schema["openapi"] == "3.1.0"
    assert set(schema["webhooks"]) == {
        "order.waitlisted", "order.allocated", "order.ready_to_collect", "order.collected",
        "order.collection_expired", "order.cancelled", "store.stock_received", "launch.sold_out",
    }  # fmt: skip
    assert "webhook-signature" in schema["webhooks"]["order.allocated"]["post"]["description"]
    paths = {p for p in schema["paths"] if p.startswith("/api/v1/webhooks/")}
    assert paths == {
        "/api/v1/webhooks/endpoints/", "/api/v1/webhooks/endpoints/{id}",
        "/api/v1/webhooks/endpoints/{id}/rotate-secret", "/api/v1/webhooks/endpoints/{id}/replay",
        "/api/v1/webhooks/deliveries/", "/api/v1/webhooks/deliveries/{id}",
        "/api/v1/webhooks/deliveries/{id}/retry",
    }  # fmt: skip
