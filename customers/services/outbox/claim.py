"""Who sends what: claiming due messages under a lease, handing them back, and backoff."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.models import Message


def backoff(attempts: int) -> datetime.timedelta:
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0))
    return datetime.timedelta(seconds=min(seconds, settings.OUTBOX_RETRY_MAX_SECONDS))


def outbox_claim(*, limit: int) -> list[int]:
    """Claim up to `limit` sendable messages for this sender; returns their ids.

    Expired leases first (a killed sender's batch), then pending rows in id order. A row
    whose lease ran out OUTBOX_MAX_ATTEMPTS times is failed rather than claimed again, so
    a message that kills its worker cannot loop forever.
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    with transaction.atomic():
        expired = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(status=Message.Status.SENDING, claimed_at__lt=cutoff)
            .order_by("claimed_at", "id")
            .values_list("id", "attempts")[:limit]
        )
        exhausted = [pk for pk, attempts in expired if attempts >= settings.OUTBOX_MAX_ATTEMPTS]
        if exhausted:
            Message.objects.filter(pk__in=exhausted).update(
                status=Message.Status.FAILED,
                claimed_at=None,
                last_error="The sender was lost while sending, too many times.",
            )
        ids = [pk for pk, attempts in expired if attempts < settings.OUTBOX_MAX_ATTEMPTS]
        if len(ids) < limit:
            ids += list(
                Message.objects.select_for_update(skip_locked=True)
                .filter(status=Message.Status.PENDING)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("id")
                .values_list("id", flat=True)[: limit - len(ids)]
            )
        if ids:
            Message.objects.filter(pk__in=ids).update(
                status=Message.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
            )
    return ids


def release(ids: list[int], *, error: str = "", delay: datetime.timedelta | None = None) -> None:
    """Hand claimed, never-attempted messages back (their claim does not count as a try)."""
    if not ids:
        return
    Message.objects.filter(pk__in=ids, status=Message.Status.SENDING).update(
        status=Message.Status.PENDING,
        claimed_at=None,
        attempts=F("attempts") - 1,
        next_attempt_at=(timezone.now() + delay) if delay else None,
        **({"last_error": error} if error else {}),
    )


def attempt_failed(row: dict, error: str) -> str:
    """Back to pending with a backoff, or failed for good after the last attempt."""
    if row["attempts"] >= settings.OUTBOX_MAX_ATTEMPTS:
        status, changes = Message.Status.FAILED, {}
    else:
        status = Message.Status.PENDING
        changes = {"next_attempt_at": timezone.now() + backoff(row["attempts"])}
    Message.objects.filter(pk=row["id"], status=Message.Status.SENDING).update(
        status=status, claimed_at=None, last_error=error[:2000], **changes
    )
    return status


def outbox_next_due() -> datetime.datetime | None:
    """When the next message not sendable now becomes sendable (a backoff or a lease ending)."""
    lease = datetime.timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    retry = (
        Message.objects.filter(status=Message.Status.PENDING, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    claimed = (
        Message.objects.filter(status=Message.Status.SENDING)
        .order_by("claimed_at")
        .values_list("claimed_at", flat=True)
        .first()
    )
    moments = [m for m in (retry, claimed + lease if claimed else None) if m is not None]
    return min(moments) if moments else None


def outbox_has_due() -> bool:
    now = timezone.now()
    return (
        Message.objects.filter(status=Message.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exists()
    )
