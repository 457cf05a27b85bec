"""Mail to partners' contacts about their integration, through the outbox.

An endpoint that kept failing for WEBHOOK_DISABLE_AFTER_SECONDS is switched off by the
webhook sender (stores), which cannot write the outbox (stores sits below customers).
The switched-off endpoint row, with no notice recorded, is the durable reminder: this
service turns each into an outbox message and records the notice in ONE transaction, so
a partner is told exactly once however often it runs (the webhook task runs it after
every drain that switched an endpoint off, and beat runs it as a safety net).
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers.models import Message
from customers.services.outbox import OutboxMessage, messages_enqueue, outbox_nudge
from stores.models import WebhookEndpoint
from stores.selectors import webhook_endpoints_awaiting_notice
from stores.services.webhooks import webhook_endpoints_notice_mark


def webhook_disabled_key(*, endpoint_id: int, disabled_at) -> str:
    return f"webhook_disabled:{endpoint_id}:{disabled_at:%Y%m%dT%H%M%S%f}"


def webhook_disabled_notices_enqueue() -> int:
    """Queue one email per endpoint switched off for failing and not yet told; returns
    how many. An endpoint whose partner has no contact email is marked too (head office
    sees it on the webhooks page), so it is not looked at again."""
    now = timezone.now()
    with transaction.atomic():
        endpoints = list(
            webhook_endpoints_awaiting_notice().select_for_update(skip_locked=True, of=("self",))
        )
        if not endpoints:
            return 0
        messages = [
            OutboxMessage(
                kind=Message.Kind.WEBHOOK_DISABLED,
                dedupe_key=webhook_disabled_key(endpoint_id=e.pk, disabled_at=e.disabled_at),
                customer_id=None,
                to_email=e.partner.contact_email,
                context=_notice(e),
            )
            for e in endpoints
            if e.partner.contact_email
        ]
        messages_enqueue(messages=messages)
        webhook_endpoints_notice_mark(endpoint_ids=[e.pk for e in endpoints], at=now)
        if messages:
            outbox_nudge()
    return len(messages)


def _notice(endpoint: WebhookEndpoint) -> dict:
    """What the email says, fixed when it is queued."""
    return {
        "partner_name": endpoint.partner.name,
        "endpoint_id": endpoint.pk,
        "url": endpoint.url,
        "reason": f"every delivery to it failed for {_duration(settings.WEBHOOK_DISABLE_AFTER_SECONDS)}",
        "failing_since": f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC" if endpoint.failing_since else "",
        "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else "",
    }


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        days = round(seconds / 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    minutes = max(round(seconds / 60), 1)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
