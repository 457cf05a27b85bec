"""The OpenAPI schema's `webhooks` object (OpenAPI 3.1): one entry per event type, the
request Launchday sends and the answer it expects (SPECTACULAR_SETTINGS["WEBHOOKS"])."""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema

from orders.api import serializers as s
from stores.models import WebhookEventType

HEADERS = (
    "Headers (Standard Webhooks): `webhook-id` (the same on every retry and replay of this event: "
    "drop copies you have handled), `webhook-timestamp` (Unix seconds of this attempt), "
    '`webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the secret\'s '
    "bytes; two, space-separated, for 24 h after a rotation). Answer 2xx within 15 s; anything else is "
    "retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h (with jitter; Retry-After is "
    "honoured); 410 switches the endpoint off; redirects are not followed."
)

_PAYLOAD = {
    WebhookEventType.STORE_STOCK_RECEIVED: s.StockReceivedEventSerializer,
    WebhookEventType.LAUNCH_SOLD_OUT: s.SoldOutEventSerializer,
}


def _webhook(event_type: WebhookEventType) -> OpenApiWebhook:
    return OpenApiWebhook(
        name=event_type.value,
        decorator=extend_schema(
            summary=str(event_type.label),
            description=HEADERS,
            request=_PAYLOAD.get(event_type, s.OrderEventSerializer),
            responses={200: OpenApiResponse(description="received (any 2xx)")},
        ),
    )


ORDER_WAITLISTED = _webhook(WebhookEventType.ORDER_WAITLISTED)
ORDER_ALLOCATED = _webhook(WebhookEventType.ORDER_ALLOCATED)
ORDER_READY_TO_COLLECT = _webhook(WebhookEventType.ORDER_READY_TO_COLLECT)
ORDER_COLLECTED = _webhook(WebhookEventType.ORDER_COLLECTED)
ORDER_COLLECTION_EXPIRED = _webhook(WebhookEventType.ORDER_COLLECTION_EXPIRED)
ORDER_CANCELLED = _webhook(WebhookEventType.ORDER_CANCELLED)
STORE_STOCK_RECEIVED = _webhook(WebhookEventType.STORE_STOCK_RECEIVED)
LAUNCH_SOLD_OUT = _webhook(WebhookEventType.LAUNCH_SOLD_OUT)
