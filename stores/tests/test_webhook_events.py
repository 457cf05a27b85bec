"""Webhook events are written in the transaction of the change that causes them, only for
partners that listen, and each change makes the events API.md names, once."""

import datetime

import orjson
import pytest
from django.db import connection, transaction
from django.utils import timezone

from inventory.manifests import manifest_parse
from inventory.selectors import store_delivery_expected
from inventory.services import delivery_announce, location_for_store
from orders.models import Order
from orders.selectors.orders import ORDER_DOCUMENT_JOINS, ORDER_DOCUMENT_SQL, order_document, order_summary
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel
from orders.services.collection import collect_deadlines_expire, order_collect
from orders.services.intake import delivery_intake, store_delivery_confirm
from stores.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookEventType
from stores.services.webhooks import (
    EndpointDisabled,
    webhook_delivery_retry,
    webhook_endpoint_update,
    webhook_replay,
)
from stores.tests.webhook_world import world_make

pytestmark = [pytest.mark.services, pytest.mark.django_db]

T = WebhookEventType


def events(**filters) -> list[tuple[str, str]]:
    return list(WebhookEvent.objects.filter(**filters).order_by("id").values_list("type", "subject"))


def test_allocator_writes_its_partners_events_in_its_batch_with_positions_and_collect_holds():
    world = world_make(online_units=1, store_units=1)
    world.endpoint("http://127.0.0.1:9/hook")
    served = world.order(0)
    waiting = world.order(1)
    waiting_too = world.order(2)
    collect = world.order(3, collect=True)
    own = world.order(4, partner=None)  # the operator's own online order: nobody's business
    launch_allocate(launch_id=world.launch.pk)

    got = {(t, s) for t, s in events()}
    assert got == {
        (T.ORDER_ALLOCATED, served.reference),
        (T.ORDER_WAITLISTED, waiting.reference),
        (T.ORDER_WAITLISTED, waiting_too.reference),
        (T.ORDER_ALLOCATED, collect.reference),
        (T.ORDER_READY_TO_COLLECT, collect.reference),
        (T.LAUNCH_SOLD_OUT, "iphone-3g IP3G-8GB-BLACK"),
    }
    assert not WebhookEvent.objects.filter(subject=own.reference).exists()
    positions = {
        e.subject: e.data["queue_position"] for e in WebhookEvent.objects.filter(type=T.ORDER_WAITLISTED)
    }
    assert positions == {waiting.reference: 1, waiting_too.reference: 2}
    ready = WebhookEvent.objects.get(type=T.ORDER_READY_TO_COLLECT)
    assert ready.data["status"] == "allocated" and ready.data["store"] == "S011" and ready.data["collect_by"]
    # One delivery per event to the one endpoint, due now.
    assert WebhookDelivery.objects.count() == len(got)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}


def test_only_the_types_an_endpoint_wants_and_only_partners_with_endpoints_get_events():
    world = world_make(online_units=5)
    world.endpoint("http://127.0.0.1:9/hook", types=[T.ORDER_WAITLISTED])
    mine = world.order(0)
    theirs = world.order(1, partner=world.other)  # the other partner has no endpoint
    launch_allocate(launch_id=world.launch.pk)
    assert Order.objects.get(pk=mine.pk).status == "allocated"
    assert events() == []  # allocated is not wanted; the other partner listens to nothing
    assert Order.objects.get(pk=theirs.pk).status == "allocated"


def test_order_document_written_by_the_database_equals_the_one_written_in_python():
    world = world_make(online_units=0, store_units=1)
    orders = [world.order(0), world.order(1, collect=True)]
    launch_allocate(launch_id=world.launch.pk)
    for order in orders:
        order = Order.objects.select_related("launch", "customer", "sku", "store").get(pk=order.pk)
        position = order_summary(order).queue_position
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {ORDER_DOCUMENT_SQL.format(position='%s::int')} FROM orders_order o "  # noqa: S608
                f"{ORDER_DOCUMENT_JOINS} WHERE o.sequence = %s",
                [position, order.sequence],
            )
            from_sql = cursor.fetchone()[0]
        from_sql = orjson.loads(from_sql) if isinstance(from_sql, str | bytes) else from_sql
        assert from_sql == orjson.loads(orjson.dumps(order_document(order_summary(order))))


def test_sold_out_is_told_once_when_the_online_pool_starts_keeping_orders_waiting():
    world = world_make(online_units=1)
    world.endpoint("http://127.0.0.1:9/a", types=[T.LAUNCH_SOLD_OUT])
    world.endpoint("http://127.0.0.1:9/b", partner=world.other, types=[T.LAUNCH_SOLD_OUT])
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    assert events() == []  # the last unit went, but nobody waits yet
    world.order(1)
    launch_allocate(launch_id=world.launch.pk)
    world.order(2)
    launch_allocate(launch_id=world.launch.pk)
    sold_out = WebhookEvent.objects.filter(type=T.LAUNCH_SOLD_OUT)
    assert sorted(sold_out.values_list("partner__code", flat=True)) == ["cpw", "phones4u"]
    assert sold_out.first().data == {"launch": "iphone-3g", "sku": "IP3G-8GB-BLACK", "waiting": 1}


def test_cancelling_makes_order_cancelled_and_a_rolled_back_cancel_makes_nothing():
    world = world_make(online_units=2)
    world.endpoint("http://127.0.0.1:9/hook", types=[T.ORDER_CANCELLED])
    order = world.order(0)
    with pytest.raises(RuntimeError), transaction.atomic():
        order_cancel(order=order, reason="test")
        assert events() == [(T.ORDER_CANCELLED, order.reference)]  # inside the change's transaction
        raise RuntimeError("the change rolls back")
    assert events() == [] and WebhookDelivery.objects.count() == 0
    order_cancel(order=Order.objects.get(pk=order.pk))
    assert events() == [(T.ORDER_CANCELLED, order.reference)]
    assert WebhookEvent.objects.get().data["status"] == "cancelled"


def test_collecting_and_an_expired_collection_each_make_one_event():
    world = world_make(online_units=0, store_units=2)
    world.endpoint(
        "http://127.0.0.1:9/hook", types=[T.ORDER_COLLECTED, T.ORDER_COLLECTION_EXPIRED, T.ORDER_CANCELLED]
    )
    collected, expired = world.order(0, collect=True), world.order(1, collect=True)
    launch_allocate(launch_id=world.launch.pk)
    order_collect(order=collected)
    Order.objects.filter(pk=expired.pk).update(collect_by=timezone.now() - datetime.timedelta(hours=1))
    assert collect_deadlines_expire() == 1
    assert events() == [
        (T.ORDER_COLLECTED, collected.reference),
        (T.ORDER_COLLECTION_EXPIRED, expired.reference),
    ]
    data = WebhookEvent.objects.get(type=T.ORDER_COLLECTION_EXPIRED).data
    assert data["status"] == "cancelled" and data["collect_by"]


def test_a_partner_store_receiving_stock_makes_stock_received_with_the_stock_after():
    world = world_make(online_units=0, store_units=0, customers=0)
    world.launch.auto_apply_plans = True
    world.launch.save()
    world.endpoint("http://127.0.0.1:9/hook", types=[T.STORE_STOCK_RECEIVED])
    body = (
        f"reference,expected_on,sku,quantity,launch\nD-1,{timezone.localdate()},IP3G-8GB-BLACK,40,iphone-3g\n"
    )
    delivery, _ = delivery_announce(manifest=manifest_parse(content=body.encode()), source="test")
    delivery_intake(delivery_id=delivery.pk)  # the plan sends the store its share, in transit
    assert events() == []
    location = location_for_store(store=world.store)
    sent = store_delivery_expected(delivery=delivery, location=location)[world.sku.pk]
    store_delivery_confirm(delivery_id=delivery.pk, location=location, received={world.sku.pk: sent})
    event = WebhookEvent.objects.get()
    assert event.type == T.STORE_STOCK_RECEIVED and event.subject == "S011"
    assert event.data["delivery"] == "D-1"
    assert event.data["received"] == [{"sku": "IP3G-8GB-BLACK", "quantity": sent}]
    assert event.data["stock"] == [
        {"sku": "IP3G-8GB-BLACK", "on_hand": sent, "reserved": 0, "available": sent}
    ]


def test_replay_makes_new_deliveries_of_the_same_events_and_refuses_a_disabled_endpoint():
    world = world_make(online_units=0)
    endpoint = world.endpoint("http://127.0.0.1:9/hook", types=[T.ORDER_WAITLISTED])
    for n in range(3):
        world.order(n)
    launch_allocate(launch_id=world.launch.pk)
    WebhookDelivery.objects.update(status="delivered")
    since = timezone.now() - datetime.timedelta(minutes=5)
    assert webhook_replay(endpoint=endpoint, since=since) == 3
    replays = WebhookDelivery.objects.filter(is_replay=True, status="pending")
    assert sorted(replays.values_list("event_id", flat=True)) == sorted(
        WebhookEvent.objects.values_list("id", flat=True)
    )
    assert webhook_replay(endpoint=endpoint, since=since, until=since + datetime.timedelta(seconds=1)) == 0
    endpoint = webhook_endpoint_update(endpoint=endpoint, enabled=False)
    assert endpoint.disabled_reason == WebhookEndpoint.DisabledReason.PARTNER
    assert not WebhookDelivery.objects.filter(status="pending").exists()  # failed with the reason
    with pytest.raises(EndpointDisabled):
        webhook_replay(endpoint=endpoint, since=since)
    with pytest.raises(EndpointDisabled):
        webhook_delivery_retry(delivery=WebhookDelivery.objects.first())
    # Events go on being recorded while it is off (for a replay), but no delivery is made.
    world.order(3)
    launch_allocate(launch_id=world.launch.pk)
    assert WebhookEvent.objects.count() == 4 and WebhookDelivery.objects.filter(status="pending").count() == 0


@pytest.mark.parametrize("microsecond", [0, 1, 640200, 999999])
def test_an_instant_reads_the_same_written_by_the_database_or_by_python(microsecond):
    """jsonb drops trailing zeros (".6402"); orjson writes six digits, or none at all."""
    from orders.selectors.orders import _CREATED_AT_SQL

    instant = datetime.datetime(2008, 7, 11, 8, 2, 3, microsecond, tzinfo=datetime.UTC)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_CREATED_AT_SQL} FROM (SELECT %s::timestamptz AS created_at) o", [instant])  # noqa: S608
        from_sql = cursor.fetchone()[0]
    assert from_sql == orjson.loads(orjson.dumps({"t": instant}))["t"]
