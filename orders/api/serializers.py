"""Shapes of the partner API for the OpenAPI schema (the contract partners read).

The views build their answers as plain dicts (orjson renders them) and validate bodies
with orders.api.validation, because serializer machinery costs more per item than the
whole of a bulk insert; these classes describe the same shapes for drf-spectacular, with
the validator's own table of field limits; schemathesis (.ci/run) holds the live API to it.
"""

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.api.validation import CODE_ALPHABET, ORDER_FIELD_LIMITS, POSTCODE_ALPHABET
from orders.codes import ErrorCode
from orders.models import Order
from stores.models import WebhookDelivery, WebhookEndpoint, WebhookEventType

_CODE = RegexValidator(rf"^{CODE_ALPHABET.pattern}$", "Letters, digits, '.', '_' and '-' only.")

ERROR_DETAILS_SCHEMA = {
    "type": "object",
    "description": (
        "What the error is about. validation_error: each bad field (or `Idempotency-Key`, "
        "`cursor`, `page_size`, `orders`) maps to a list of messages. already_ordered: "
        "`reference` names the existing order only when it is the caller's own. "
        "invalid_json and overloaded: `reason`."
    ),
    "properties": {
        "reference": {"type": "string", "description": "already_ordered: the caller's own existing order"},
        "reason": {"type": "string", "description": "invalid_json, overloaded: why"},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


@extend_schema_field(ERROR_DETAILS_SCHEMA)
class ErrorDetailsField(serializers.DictField):
    pass


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[c.value for c in ErrorCode],
        help_text="what went wrong, as a code (see the status's description)",
    )
    message = serializers.CharField(help_text="a sentence for people; may change, do not parse it")
    details = ErrorDetailsField(required=False)


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
        min_length=1, max_length=ORDER_FIELD_LIMITS["launch"], validators=[_CODE], help_text="launch slug"
    )
    customer = serializers.CharField(
        min_length=1,
        max_length=ORDER_FIELD_LIMITS["customer"],
        validators=[_CODE],
        help_text="the customer's account number",
    )
    sku = serializers.CharField(
        min_length=1, max_length=ORDER_FIELD_LIMITS["sku"], validators=[_CODE], help_text="SKU code"
    )
    fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
    store = serializers.CharField(
        min_length=1,
        max_length=ORDER_FIELD_LIMITS["store"],
        validators=[_CODE],
        required=False,
        allow_null=True,
        help_text="store code; required for collect",
    )
    postcode = serializers.RegexField(
        POSTCODE_ALPHABET.pattern,
        min_length=1,
        max_length=ORDER_FIELD_LIMITS["postcode"],
        help_text=(
            "the customer's postcode, compared ignoring case and spaces: the proof that the "
            "partner acts for this customer. A wrong postcode is answered not_eligible, as an "
            "unknown customer is, and counts against the key (too many in an hour: throttled)."
        ),
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
        allow_null=True,
        help_text=(
            "place among orders waiting in its pool (1 = next); null unless queued or waitlisted, "
            "and null while queued in a fair start's opening draw (in the opening draw: no place yet)"
        ),
    )
    created_at = serializers.DateTimeField()


class OrderPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = OrderSerializer(many=True)


BULK_ORDERS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1000,
    "description": (
        "1 to 1,000 orders, each an OrderRequest (a bare JSON array is accepted too; more is "
        "payload_too_large). Items are checked one by one: a malformed item gets its own 4xx "
        "result and the others go on, so the schema of an item is not enforced here."
    ),
    "items": {"description": "an OrderRequest"},
}
# The body: {"orders": [...]} or, as API.md allows, the bare array.
BULK_REQUEST_SCHEMA = {
    "oneOf": [
        {"type": "object", "required": ["orders"], "properties": {"orders": BULK_ORDERS_SCHEMA}},
        BULK_ORDERS_SCHEMA,
    ]
}


@extend_schema_field(BULK_ORDERS_SCHEMA)
class BulkOrdersField(serializers.ListField):
    pass


class BulkRequestSerializer(serializers.Serializer):
    orders = BulkOrdersField()


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
    # A wall-clock time in the store's own time zone, so no offset: not OpenAPI's "time".
    opens_at_launch = serializers.RegexField(
        r"^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$", help_text="local opening time on launch day, HH:MM:SS"
    )


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
