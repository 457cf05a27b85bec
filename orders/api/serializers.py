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
