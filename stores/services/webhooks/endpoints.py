"""Webhook endpoints: created, changed, rotated, switched off and on, deleted.

Only these functions (and the sender's bookkeeping in sender.py) write the endpoints
table. A disabled endpoint gets no new deliveries and its pending ones fail with the
reason, so nothing is sent to it; events are still recorded, and a replay of a time
range (events.webhook_replay) delivers what it missed, each with its webhook-id.
"""

import datetime
import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from stores.models import Partner, WebhookDelivery, WebhookEndpoint, WebhookEventType
from stores.services.webhooks.signing import secret_generate, secret_key
from stores.services.webhooks.transport import address_allowed

MAX_URL_LENGTH = 2000


class EndpointInvalid(Exception):
    """Fields of an endpoint that cannot be accepted: field name -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class EndpointDisabled(Exception):
    """The endpoint is switched off: enable it before retrying or replaying."""


def endpoint_url_problems(url: object) -> list[str]:
    """Why a URL cannot be an endpoint ([] when it can). The address guard at connection
    time is the real check; this refuses early what can never work."""
    if not isinstance(url, str) or not url.strip():
        return ["Give the endpoint's URL."]
    if len(url) > MAX_URL_LENGTH:
        return [f"At most {MAX_URL_LENGTH} characters."]
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return ["Not a valid URL."]
    schemes = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if parts.scheme not in schemes:
        return [f"The URL must start with {' or '.join(s + '://' for s in schemes)}."]
    if not host:
        return ["The URL needs a host name."]
    if parts.username or parts.password:
        return ["Put no user name or password in the URL; verify the signature instead."]
    if parts.fragment:
        return ["A URL with a #fragment cannot be posted to."]
    if any(c.isspace() or ord(c) < 32 for c in url):
        return ["The URL may not contain spaces or control characters."]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(literal):
        return ["Private, loopback and link-local addresses cannot receive webhooks."]
    return []


def event_types_problems(event_types: object) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        return ["Give a list of one or more event types."]
    unknown = [t for t in event_types if t not in WebhookEventType.values]
    if unknown:
        return [
            f"Unknown event type(s): {', '.join(map(str, unknown))}. Known: {', '.join(WebhookEventType.values)}."
        ]
    return []


def _check(**fields: object) -> None:
    errors: dict[str, list[str]] = {}
    if "url" in fields:
        errors["url"] = endpoint_url_problems(fields["url"])
    if "event_types" in fields:
        errors["event_types"] = event_types_problems(fields["event_types"])
    if "description" in fields:
        description = fields["description"]
        if not isinstance(description, str) or len(description) > 200:
            errors["description"] = ["At most 200 characters of text."]
    errors = {k: v for k, v in errors.items() if v}
    if errors:
        raise EndpointInvalid(errors)


def _types(event_types: Sequence[str]) -> list[str]:
    """Known types, each once, in the published order."""
    return [t for t in WebhookEventType.values if t in set(event_types)]


def webhook_endpoint_create(
    *, partner: Partner, url: str, event_types: list[str], description: str = ""
) -> WebhookEndpoint:
    """A new, enabled endpoint with a fresh secret (shown to the partner once)."""
    _check(url=url, event_types=event_types, description=description)
    return WebhookEndpoint.objects.create(
        partner=partner,
        url=url.strip(),
        event_types=_types(event_types),
        description=description,
        secret=secret_generate(),
    )


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    disabled_by: str = WebhookEndpoint.DisabledReason.PARTNER,
) -> WebhookEndpoint:
    """Change what is given; switching off records who did it, switching on clears the
    reason and the failure streak (so the five days start again)."""
    given = {
        k: v
        for k, v in {"url": url, "event_types": event_types, "description": description}.items()
        if v is not None
    }
    _check(**given)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if url is not None:
        endpoint.url = url.strip()
    if event_types is not None:
        endpoint.event_types = _types(event_types)
    if description is not None:
        endpoint.description = description
    endpoint.save()
    if enabled is False and endpoint.is_enabled:
        webhook_endpoint_disable(endpoint_id=endpoint.pk, reason=disabled_by)
    elif enabled is True and not endpoint.is_enabled:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_enabled=True, disabled_reason="", disabled_at=None, failing_since=None, notice_queued_at=None
        )
    endpoint.refresh_from_db()
    return endpoint


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret signs from now on; the current one keeps signing beside it for
    WEBHOOK_SECRET_OVERLAP_SECONDS (24 h), then stops. Rotating again within the overlap
    drops the oldest secret at once (two live secrets at most)."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + datetime.timedelta(
            seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS
        )
        endpoint.secret = secret_generate()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


def signing_keys(
    *,
    secret: str,
    previous_secret: str,
    previous_expires_at: datetime.datetime | None,
    now: datetime.datetime,
) -> list[bytes]:
    """The keys that sign a request made at `now`: the secret, and the previous one
    while its overlap lasts."""
    keys = [secret_key(secret)]
    if previous_secret and previous_expires_at is not None and now < previous_expires_at:
        keys.append(secret_key(previous_secret))
    return keys


def webhook_endpoint_disable(*, endpoint_id: int, reason: str) -> bool:
    """Switch an endpoint off (False if it already was); its pending deliveries fail.

    Rows a sender holds (`sending`) are left to it: it sees the endpoint off at its next
    check and hands them back, which fails them too.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(pk=endpoint_id, is_enabled=True).update(
            is_enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now
        )
        if changed:
            label = WebhookEndpoint.DisabledReason(reason).label
            WebhookDelivery.objects.filter(
                endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING
            ).update(
                status=WebhookDelivery.Status.FAILED, last_error=f"Endpoint switched off: {label}."[:500]
            )
    return bool(changed)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint with its deliveries and their log (events stay, for others)."""
    endpoint.delete()


def webhook_endpoints_notice_mark(*, endpoint_ids: list[int], at: datetime.datetime) -> None:
    """Record that the partners' contacts were told about these disablings (the outbox
    row is written in the same transaction by the caller)."""
    WebhookEndpoint.objects.filter(pk__in=endpoint_ids).update(notice_queued_at=at)
