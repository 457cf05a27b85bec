"""Webhooks: partners hear about their orders and stores the moment they change.

- endpoints.py: a partner's endpoints (URL, event types, secret and its rotation,
  switched off and why);
- events.py: events written in the transaction of the change, each with a delivery per
  listening endpoint; replays and manual retries;
- sender.py: senders that claim due deliveries under SKIP LOCKED and POST them, signed
  (signing.py), through a client that refuses private addresses (transport.py).

Only these modules write the webhook tables. This package's face: the names others use.
"""

from stores.services.webhooks.endpoints import (
    EndpointDisabled,
    EndpointInvalid,
    endpoint_url_problems,
    event_types_problems,
    signing_keys,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_disable,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_endpoints_notice_mark,
)
from stores.services.webhooks.events import (
    EVENT_SOURCE_COLUMNS,
    EventIn,
    webhook_broadcast,
    webhook_delivery_retry,
    webhook_events_enqueue,
    webhook_events_enqueue_from,
    webhook_partners_listening,
    webhook_replay,
)
from stores.services.webhooks.sender import (
    DRAIN_TASK,
    NUDGE_KEY,
    WAKE_KEY,
    DrainResult,
    retry_after,
    retry_delay,
    webhooks_drain,
    webhooks_due,
    webhooks_next_due,
    webhooks_nudge,
    webhooks_nudge_now,
)
from stores.services.webhooks.signing import secret_generate, signature

__all__ = [
    "DRAIN_TASK",
    "EVENT_SOURCE_COLUMNS",
    "NUDGE_KEY",
    "WAKE_KEY",
    "DrainResult",
    "EndpointDisabled",
    "EndpointInvalid",
    "EventIn",
    "endpoint_url_problems",
    "event_types_problems",
    "retry_after",
    "retry_delay",
    "secret_generate",
    "signature",
    "signing_keys",
    "webhook_broadcast",
    "webhook_delivery_retry",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_disable",
    "webhook_endpoint_rotate_secret",
    "webhook_endpoint_update",
    "webhook_endpoints_notice_mark",
    "webhook_events_enqueue",
    "webhook_events_enqueue_from",
    "webhook_partners_listening",
    "webhook_replay",
    "webhooks_drain",
    "webhooks_due",
    "webhooks_next_due",
    "webhooks_nudge",
    "webhooks_nudge_now",
]
