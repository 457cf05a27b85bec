"""Shapes of the partner API for the OpenAPI schema (API.md is the contract).

The views build their answers as plain dicts (orjson renders them) and validate bodies
with orders.api.validation, because serializer machinery costs more per item than the
whole of a bulk insert; these classes describe the same shapes for drf-spectacular, with
the validator's own table of field limits, and a test holds the schema to API.md's paths.
"""

from rest_framework import serializers

from orders.api.validation import ORDER_FIELD_LIMITS
from orders.codes import ErrorCode
from orders.models import Order
from stores.models import WebhookDelivery, WebhookEndpoint, WebhookEventType


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[c.value for c in ErrorCode], help_text="what went wrong, as a code"
    )
    message = serializers.CharField()
    details = serializers.DictField(required=False, help_text="for validation errors: field -> messages")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class LaunchSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    is_open = serializers.BooleanField()


class LaunchListSerializer(serializers.Serializer):
    results = LaunchSerializer(many=True)


class SkuAvailabilitySerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    online_available = serializers.IntegerField(help_text="units in the online pool not yet reserved")
    waiting = serializers.IntegerField(help_text="orders waiting for a unit of the online pool")


class AvailabilitySerializer(serializers.Serializer):
    launch = serializers.CharField()
    skus = SkuAvailabilitySerializer(many=True)


class OrderRequestSerializer(serializers.Serializer):
    launch = serializers.CharField(
        min_length=1, max_length=ORDER_FIELD_LIMITS["launch"], help_text="launch slug"
    )
    customer = serializers.CharField(
        min_length=1, max_length=ORDER_FIELD_LIMITS["customer"], help_text="the customer's account number"
    )
    sku = serializers.CharField(min_length=1, max_length=ORDER_FIELD_LIMITS["sku"], help_text="SKU code")
    fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
    store = serializers.CharField(
        min_length=1,
        max_length=ORDER_FIELD_LIMITS["store"],
        required=False,
        allow_null=True,
        help_text="store code; required for collect",
    )


class OrderSerializer(serializers.Serializer):
    reference = serializers.CharField()
    launch = serializers.CharField()
    customer = serializers.CharField()
    sku = serializers.CharField()
    fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
    store = serializers.CharField(allow_null=True)
    channel = serializers.ChoiceField(choices=Order.Channel.choices)
    status = serializers.ChoiceField(choices=Order.Status.choices)
    queue_position = serializers.IntegerField(
        allow_null=True, help_text="place among orders waiting in its pool (1 = next); null unless waiting"
    )
    created_at = serializers.DateTimeField()


class OrderPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = OrderSerializer(many=True)


class BulkRequestSerializer(serializers.Serializer):
    orders = OrderRequestSerializer(
        many=True, help_text="1 to 1,000 orders (a bare JSON array is accepted too)"
    )


class BulkResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="position of the item in the request")
    status = serializers.IntegerField(help_text="202, or the status a single request would have had")
    order = OrderSerializer(required=False)
    error = ErrorDetailSerializer(required=False)


class BulkResponseSerializer(serializers.Serializer):
    results = BulkResultSerializer(many=True)


class StoreSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    opens_at_launch = serializers.TimeField()


class StoreListSerializer(serializers.Serializer):
    results = StoreSerializer(many=True)


class StockLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


class StoreStockSerializer(serializers.Serializer):
    store = serializers.CharField()
    stock = StockLineSerializer(many=True)


# --- Webhooks (orders.api.webhooks; the payloads are the schema's `webhooks` object) ---


class WebhookEndpointRequestSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=2000, help_text="https, on the public internet; redirects are not followed"
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices), min_length=1
    )
    description = serializers.CharField(max_length=200, required=False)


class WebhookEndpointPatchSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, required=False)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices), min_length=1, required=False
    )
    description = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(
        required=False, help_text="false switches it off; true switches it back on (replay what it missed)"
    )


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEventType.choices))
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=WebhookEndpoint.DisabledReason.choices, allow_null=True, help_text="why it is off"
    )
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text="every delivery has failed since then; switched off after 5 days"
    )
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="after a rotation, the old secret signs too until then (24 h)"
    )
    created_at = serializers.DateTimeField()


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="whsec_<base64>: shown only when created or rotated")


class WebhookEndpointListSerializer(serializers.Serializer):
    results = WebhookEndpointSerializer(many=True)


class WebhookReplayRequestSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="events from this moment (inclusive)")
    until = serializers.DateTimeField(required=False, help_text="to this moment (exclusive; default now)")


class WebhookReplaySerializer(serializers.Serializer):
    replayed = serializers.IntegerField(help_text="deliveries queued, each keeping its event's webhook-id")


class WebhookAttemptSerializer(serializers.Serializer):
    attempted_at = serializers.DateTimeField()
    request_headers = serializers.DictField(child=serializers.CharField())
    status_code = serializers.IntegerField(allow_null=True, help_text="null: no answer")
    response_body = serializers.CharField(help_text="the first 2 KB of the answer")
    duration_ms = serializers.IntegerField()
    error = serializers.CharField()


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.IntegerField()
    webhook_id = serializers.CharField(
        help_text="the webhook-id header: the same on every attempt and replay"
    )
    event_type = serializers.ChoiceField(choices=WebhookEventType.choices)
    subject = serializers.CharField(help_text="order reference, store code or launch and SKU")
    occurred_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    replay = serializers.BooleanField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class WebhookPayloadSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=WebhookEventType.choices)
    timestamp = serializers.DateTimeField(help_text="when the change happened")
    data = serializers.DictField(help_text="the Order, the store's stock, or the launch and SKU")


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = WebhookPayloadSerializer()
    attempt_log = WebhookAttemptSerializer(many=True)


class WebhookDeliveryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WebhookDeliverySerializer(many=True)


class OrderEventDataSerializer(OrderSerializer):
    collect_by = serializers.DateTimeField(
        required=False, help_text="order.ready_to_collect and order.collection_expired: the deadline"
    )


class OrderEventSerializer(serializers.Serializer):
    type = serializers.CharField()
    timestamp = serializers.DateTimeField()
    data = OrderEventDataSerializer()


class StockReceivedLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()


class StockReceivedDataSerializer(serializers.Serializer):
    store = serializers.CharField()
    delivery = serializers.CharField(help_text="the supplier delivery's reference")
    received = StockReceivedLineSerializer(many=True)
    stock = StockLineSerializer(many=True, help_text="the store's stock after receiving")


class StockReceivedEventSerializer(serializers.Serializer):
    type = serializers.CharField()
    timestamp = serializers.DateTimeField()
    data = StockReceivedDataSerializer()


class SoldOutDataSerializer(serializers.Serializer):
    launch = serializers.CharField()
    sku = serializers.CharField()
    waiting = serializers.IntegerField(help_text="orders waiting for the online pool")


class SoldOutEventSerializer(serializers.Serializer):
    type = serializers.CharField()
    timestamp = serializers.DateTimeField()
    data = SoldOutDataSerializer()
