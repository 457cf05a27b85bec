"""Webhook events: written in the transaction of the change they report, with a pending
delivery for each enabled endpoint of the partner that wants that type.

An event is recorded only for a partner with an endpoint subscribed to its type (enabled
or not: a disabled endpoint can replay what it missed once it is back), and costs the
callers nothing when no partner listens. Rolled back with its change, committed with it:
never sent for a change that did not happen, never lost for one that did.
"""

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from stores.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from stores.services.webhooks.endpoints import EndpointDisabled
from stores.services.webhooks.sender import webhooks_nudge


@dataclass(frozen=True)
class EventIn:
    """One event to record. `data` may hold datetimes (written as ISO 8601)."""

    partner_id: int
    type: str
    data: Mapping[str, Any]
    subject: str = ""
    occurred_at: datetime.datetime | None = field(default=None)


def _subscriptions(partner_ids: set[int] | None) -> list[tuple[int, int, list[str], bool]]:
    """(endpoint id, partner id, event types, enabled) of the partners' endpoints (all if None)."""
    endpoints = WebhookEndpoint.objects.all()
    if partner_ids is not None:
        endpoints = endpoints.filter(partner_id__in=partner_ids)
    return list(endpoints.values_list("id", "partner_id", "event_types", "is_enabled"))


def webhook_events_enqueue(*, events: Sequence[EventIn]) -> int:
    """Record events and their deliveries; returns the number of deliveries queued.

    Call inside the transaction of the change; the senders are nudged after it commits.
    """
    if not events:
        return 0
    subscriptions = _subscriptions({e.partner_id for e in events})
    if not subscriptions:
        return 0
    now = timezone.now()
    wanted = [
        e for e in events if any(p == e.partner_id and e.type in types for _, p, types, _ in subscriptions)
    ]
    rows = WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                partner_id=e.partner_id,
                type=e.type,
                occurred_at=e.occurred_at or now,
                data=orjson.loads(orjson.dumps(dict(e.data))),
                subject=e.subject[:64],
            )
            for e in wanted
        ]
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(event=row, endpoint_id=endpoint_id, next_attempt_at=now, created_at=now)
            for row in rows
            for endpoint_id, partner_id, types, enabled in subscriptions
            if enabled and partner_id == row.partner_id and row.type in types
        ]
    )
    if deliveries:
        webhooks_nudge()
    return len(deliveries)


def webhook_broadcast(*, type: str, data: Mapping[str, Any], subject: str = "") -> int:
    """An event that is every listening partner's business (a launch selling out): one
    per partner with an endpoint wanting the type. Returns deliveries queued."""
    partners = {p for _, p, types, _ in _subscriptions(None) if type in types}
    return webhook_events_enqueue(
        events=[EventIn(partner_id=p, type=type, data=data, subject=subject) for p in sorted(partners)]
    )


# The columns a statement feeding webhook_events_enqueue_from returns, one row per event.
EVENT_SOURCE_COLUMNS = ("partner_id", "type", "subject", "data")

# One statement: the caller's rows become events (for partners listening to the type)
# and the events deliveries (to each enabled endpoint listening). occurred_at is the
# transaction's time, as the change's own timestamps are.
_ENQUEUE_FROM = """
WITH src AS ({source}),
ev AS (
  INSERT INTO stores_webhookevent (public_id, partner_id, type, occurred_at, data, subject)
  SELECT gen_random_uuid(), s.partner_id, s.type, now(), s.data, left(s.subject, 64) FROM src s
  WHERE EXISTS (SELECT 1 FROM stores_webhookendpoint w
                WHERE w.partner_id = s.partner_id AND jsonb_exists(w.event_types, s.type))
  RETURNING id, partner_id, type
)
INSERT INTO stores_webhookdelivery (event_id, endpoint_id, status, attempts, next_attempt_at, last_error,
  is_replay, created_at)
SELECT ev.id, w.id, 'pending', 0, now(), '', false, now()
FROM ev JOIN stores_webhookendpoint w
  ON w.partner_id = ev.partner_id AND w.is_enabled AND jsonb_exists(w.event_types, ev.type)
"""


def webhook_events_enqueue_from(*, source: str, params: Mapping[str, Any]) -> int:
    """Run `source` (a SELECT returning EVENT_SOURCE_COLUMNS, `data` as jsonb) and record
    its rows as events with their deliveries, as ONE statement. PostgreSQL only.

    For callers that write many events at once (the allocator): no row travels to Python.
    Returns the number of deliveries queued; the senders are nudged after commit.
    """
    with connection.cursor() as cursor:
        cursor.execute(_ENQUEUE_FROM.format(source=source), params)
        queued = cursor.rowcount
    if queued:
        webhooks_nudge()
    return queued


def webhook_partners_listening() -> frozenset[int]:
    """Partners with at least one endpoint: the only ones whose changes make events.

    Callers that write in bulk check this first, so a launch without listening partners
    pays one small query per batch and nothing more.
    """
    return frozenset(WebhookEndpoint.objects.values_list("partner_id", flat=True).distinct())


def webhook_replay(
    *, endpoint: WebhookEndpoint, since: datetime.datetime, until: datetime.datetime | None = None
) -> int:
    """Deliver again every event of the endpoint's partner in [since, until) that the
    endpoint wants: new deliveries, due now, each keeping its event's webhook-id.

    Raises EndpointDisabled for an endpoint switched off, and ValueError for a range of
    more than WEBHOOK_REPLAY_MAX_EVENTS events (ask for a narrower one).
    """
    until = until or timezone.now()
    if not endpoint.is_enabled:
        raise EndpointDisabled("Switch the endpoint on before replaying.")
    events = WebhookEvent.objects.filter(
        partner_id=endpoint.partner_id,
        occurred_at__gte=since,
        occurred_at__lt=until,
        type__in=endpoint.event_types,
    )
    ids = list(
        events.order_by("occurred_at", "id").values_list("id", flat=True)[
            : settings.WEBHOOK_REPLAY_MAX_EVENTS + 1
        ]
    )
    if len(ids) > settings.WEBHOOK_REPLAY_MAX_EVENTS:
        raise ValueError(
            f"More than {settings.WEBHOOK_REPLAY_MAX_EVENTS:,} events in that range; replay a narrower one."
        )
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    event_id=pk, endpoint=endpoint, is_replay=True, next_attempt_at=now, created_at=now
                )
                for pk in ids
            ],
            batch_size=2000,
        )
        if ids:
            webhooks_nudge()
    return len(ids)


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Try a delivery once more, now (a failed one, or a delivered one the partner lost).

    A delivery being sent is left alone. Raises EndpointDisabled for an endpoint switched off.
    """
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        if not delivery.endpoint.is_enabled:
            raise EndpointDisabled("Switch the endpoint on before retrying.")
        if delivery.status != WebhookDelivery.Status.SENDING:
            delivery.status = WebhookDelivery.Status.PENDING
            delivery.next_attempt_at = timezone.now()
            delivery.claimed_at = None
            delivery.save(update_fields=["status", "next_attempt_at", "claimed_at"])
            webhooks_nudge()
    return delivery
