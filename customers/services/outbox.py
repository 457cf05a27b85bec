"""The outbox: messages written with the event that causes them, sent exactly once.

A Message row is inserted in the same transaction as its event, with a unique dedupe key,
so no event makes two messages and no committed event makes none. Senders (Celery tasks,
see customers/tasks.py) drain the outbox in batches:

1. claim a batch: pending rows (and rows whose sending lease expired) become `sending`
   with claimed_at = now, under FOR UPDATE SKIP LOCKED, so two senders never claim one row;
2. render and send each over one SMTP connection, and mark each `sent` in its own
   autocommit UPDATE right after the server accepted it;
3. a failed attempt goes back to `pending` with a backoff (or `failed` after
   OUTBOX_MAX_ATTEMPTS, keeping its last error).

A worker killed mid-batch leaves its batch `sending`. When the lease has run out the rows
are claimed again. All of them were never sent, except at most the one whose SMTP
transaction was under way at the kill: that one may arrive twice, with the same
Message-ID, so a mail system can drop the copy. Nothing is ever lost.
"""

from __future__ import annotations

import datetime
import logging
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import F, Q
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer, Message

logger = logging.getLogger(__name__)

NUDGE_KEY = "outbox:nudge"
WAKE_KEY = "outbox:wake"
UNSUBSCRIBE_SALT = "launchday.customers.unsubscribe"

SUBJECTS = {
    Message.Kind.ORDER_RECEIVED: "We have your order {reference}",
    Message.Kind.ALLOCATED: "Your phone is reserved: order {reference}",
    Message.Kind.READY_TO_COLLECT: "Ready to collect: order {reference}",
    Message.Kind.COLLECTION_EXPIRED: "Collection deadline passed: order {reference}",
    Message.Kind.APOLOGY: "We're sorry: {launch}",
    Message.Kind.BACK_IN_STOCK: "{launch} is back in stock",
}


class OutboxConnectionError(Exception):
    """The SMTP server could not be reached or dropped the connection; try again later."""


# --- Enqueue ------------------------------------------------------------------------------


def message_enqueue(
    *,
    kind: str,
    dedupe_key: str,
    customer: Customer,
    order=None,
    launch=None,
    campaign=None,
    context: dict | None = None,
) -> None:
    """Put one message in the outbox. Call inside the transaction of the event it reports.

    A second call with the same dedupe key changes nothing (the database decides).
    """
    messages_enqueue_bulk(
        messages=[
            Message(
                kind=kind,
                dedupe_key=dedupe_key,
                customer=customer,
                order=order,
                launch=launch,
                campaign=campaign,
                context=context or {},
            )
        ]
    )


def messages_enqueue_bulk(*, messages: Iterable[Message], batch_size: int = 2000) -> None:
    """Insert many unsaved Message rows; rows whose dedupe key exists are skipped.

    One multi-row INSERT ... ON CONFLICT DO NOTHING per batch, so the allocator can write
    thousands of messages inside its transaction cheaply.
    """
    Message.objects.bulk_create(list(messages), batch_size=batch_size, ignore_conflicts=True)


def outbox_nudge() -> None:
    """Ask a sender to drain the outbox once the current transaction commits.

    Coalesced: while one drain task is queued and not yet started, further nudges add
    nothing, so a burst of ten thousand orders makes one task, not ten thousand. Losing a
    nudge loses nothing: the beat schedule drains the outbox anyway.
    """
    transaction.on_commit(outbox_nudge_now)


def outbox_nudge_now() -> None:
    from customers.tasks import outbox_drain

    if cache.add(NUDGE_KEY, 1, timeout=settings.OUTBOX_NUDGE_TTL_SECONDS):
        try:
            outbox_drain.delay()
        except Exception:
            # The broker being away must not fail the request that wrote the rows; the
            # rows are committed and the beat schedule will drain them.
            cache.delete(NUDGE_KEY)
            logger.exception("could not enqueue the outbox drain")


# --- Unsubscribe --------------------------------------------------------------------------


def unsubscribe_token_make(*, customer: Customer) -> str:
    return signing.dumps({"c": customer.pk}, salt=UNSUBSCRIBE_SALT, compress=False)


def unsubscribe_token_verify(*, token: str) -> int | None:
    """The customer id a token was signed for, or None for a tampered or foreign token."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int):
        return None
    return data["c"]


def unsubscribe_url(*, customer: Customer) -> str:
    path = reverse("unsubscribe", kwargs={"token": unsubscribe_token_make(customer=customer)})
    return settings.SITE_URL.rstrip("/") + path


@transaction.atomic
def customer_unsubscribe(*, customer_id: int) -> Customer | None:
    """Stop marketing-type mail to a customer; order mail still goes. Safe to repeat."""
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        return None
    if not customer.marketing_opt_out:
        customer.marketing_opt_out = True
        customer.save(update_fields=["marketing_opt_out"])
    return customer


# --- Rendering ----------------------------------------------------------------------------


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: dict[str, str]


@dataclass
class RenderCache:
    """Per-batch memo of reads shared by many messages (deliveries, pool states)."""

    next_delivery: dict[int, object] = field(default_factory=dict)
    served_through: dict[tuple[int, int, int], int] = field(default_factory=dict)


def _next_delivery(launch, cache_: RenderCache):
    if launch is None:
        return None
    if launch.pk not in cache_.next_delivery:
        # inventory.Delivery read through the launch's reverse relation; orders don't own it.
        cache_.next_delivery[launch.pk] = (
            launch.deliveries.filter(status="announced", expected_on__gte=timezone.localdate())
            .order_by("expected_on")
            .first()
        )
    return cache_.next_delivery[launch.pk]


def _queue_position(order, cache_: RenderCache) -> int | None:
    """The order's honest place among orders still waiting in its pool (1 = next)."""
    if order is None or order.status != "waitlisted" or order.wait_number is None:
        return None
    key = (order.launch_id, order.sku_id, order.pool_id)
    if key not in cache_.served_through:
        state = order.launch.pools.filter(sku_id=order.sku_id, pool_id=order.pool_id).first()
        cache_.served_through[key] = state.served_through if state else 0
    return max(order.wait_number - cache_.served_through[key], 1)


def _preferred_store(message: Message):
    if message.launch_id is None:
        return None
    registration = (
        message.customer.registrations.filter(launch_id=message.launch_id)
        .select_related("preferred_store")
        .first()
    )
    return registration.preferred_store if registration else None


def message_render(*, message: Message, render_cache: RenderCache | None = None) -> RenderedEmail:
    """Subject, plain text and HTML of a message, from templates/emails/<kind>.*.

    Rendered at send time from the order's current data, so the email tells the truth as
    it is when it leaves, not as it was when the row was written.
    """
    render_cache = render_cache or RenderCache()
    order = message.order
    launch = message.launch or (order.launch if order is not None else None)
    marketing = message.is_marketing
    context = {
        "customer": message.customer,
        "order": order,
        "launch": launch,
        "reference": order.reference if order is not None else "",
        "data": message.context,
        "site_url": settings.SITE_URL.rstrip("/"),
        "unsubscribe_url": unsubscribe_url(customer=message.customer) if marketing else "",
    }
    if message.kind == Message.Kind.ORDER_RECEIVED:
        context["position"] = message.context.get("position") or _queue_position(order, render_cache)
    elif message.kind == Message.Kind.APOLOGY:
        context["position"] = _queue_position(order, render_cache)
        context["next_delivery"] = _next_delivery(launch, render_cache)
    elif message.kind == Message.Kind.BACK_IN_STOCK:
        context["store"] = _preferred_store(message)
    text = get_template(f"emails/{message.kind}.txt").render(context)
    html = get_template(f"emails/{message.kind}.html").render(context)
    subject = SUBJECTS[message.kind].format(reference=context["reference"], launch=launch or "")
    domain = settings.OUTBOX_MESSAGE_ID_DOMAIN
    headers = {"Message-ID": f"<{message.message_id}@{domain}>"}
    if marketing:
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return RenderedEmail(subject=subject, text=text, html=html, headers=headers)


def message_email(*, message: Message, render_cache: RenderCache | None = None) -> EmailMultiAlternatives:
    rendered = message_render(message=message, render_cache=render_cache)
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.customer.email],
        headers=rendered.headers,
    )
    email.attach_alternative(rendered.html, "text/html")
    return email


# --- Sending ------------------------------------------------------------------------------


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    released: int = 0


class _Pacer:
    """Per-process send rate limit (EMAIL_SEND_RATE_PER_SECOND; 0 means as fast as possible)."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def wait(self) -> None:
        rate = settings.EMAIL_SEND_RATE_PER_SECOND
        if rate <= 0:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = max(self.next_at, now) + 1.0 / rate


_pacer = _Pacer()


def _backoff(attempts: int) -> datetime.timedelta:
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


def _release(ids: list[int], *, error: str = "", delay: datetime.timedelta | None = None) -> None:
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


def _attempt_failed(message: Message, error: str) -> str:
    """Back to pending with a backoff, or failed for good after the last attempt."""
    if message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        status, changes = Message.Status.FAILED, {}
    else:
        status = Message.Status.PENDING
        changes = {"next_attempt_at": timezone.now() + _backoff(message.attempts)}
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=status, claimed_at=None, last_error=error[:2000], **changes
    )
    return status


class _SentMarker:
    """Marks accepted messages sent, one autocommit UPDATE each, the moment SMTP says 250.

    On PostgreSQL the batch's connection skips waiting for the WAL flush
    (synchronous_commit off, reset afterwards). A killed worker cannot lose a mark, since
    PostgreSQL already has it; only a crash of PostgreSQL itself within a fraction of a
    second could, and then those messages go again with the same Message-ID. The trade
    saves one fsync per email, which would otherwise cost more than the send itself.
    """

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.postgres = connection.vendor == "postgresql"
        if self.postgres:
            self.cursor.execute("SET synchronous_commit TO OFF")
        self.sql = (
            f"UPDATE {Message._meta.db_table} SET status = %s, sent_at = %s, claimed_at = NULL WHERE id = %s"  # noqa: S608 - table name from the model, values bound
        )

    def mark(self, pk: int) -> None:
        self.cursor.execute(self.sql, [Message.Status.SENT, timezone.now(), pk])

    def close(self) -> None:
        if self.postgres:
            self.cursor.execute("RESET synchronous_commit")
        self.cursor.close()


def outbox_send_batch(*, limit: int | None = None) -> BatchResult:
    """Claim one batch and send it over one SMTP connection.

    Each message is marked sent the moment the server accepts it, so a kill can only ever
    leave one accepted-but-unmarked message behind. Raises OutboxConnectionError when the
    server cannot be reached (the batch is handed back untouched) so the task can back off.
    """
    limit = limit or settings.OUTBOX_BATCH_SIZE
    result = BatchResult()
    ids = outbox_claim(limit=limit)
    result.claimed = len(ids)
    if not ids:
        return result
    started = time.monotonic()
    # Stop well inside the lease so no other sender ever takes over a batch still in hand.
    budget = settings.OUTBOX_LEASE_SECONDS / 2
    messages = list(
        Message.objects.filter(pk__in=ids)
        .select_related("customer", "order__launch", "order__store", "order__sku", "launch")
        .order_by("id")
    )
    opted_out = [m.pk for m in messages if m.is_marketing and m.customer.marketing_opt_out]
    if opted_out:
        Message.objects.filter(pk__in=opted_out).update(status=Message.Status.SUPPRESSED, claimed_at=None)
        result.suppressed = len(opted_out)
        messages = [m for m in messages if m.pk not in set(opted_out)]
    if not messages:
        return result

    smtp = get_connection()
    try:
        smtp.open()
    except (OSError, smtplib.SMTPException) as exc:
        _release([m.pk for m in messages], error=f"SMTP connection: {exc}", delay=_backoff(1))
        raise OutboxConnectionError(str(exc)) from exc

    render_cache = RenderCache()
    marker = _SentMarker()
    try:
        for index, message in enumerate(messages):
            if time.monotonic() - started > budget:
                rest = [m.pk for m in messages[index:]]
                _release(rest)
                result.released += len(rest)
                break
            try:
                email = message_email(message=message, render_cache=render_cache)
            except Exception as exc:  # a template or data fault: keep it visible, retry later
                logger.exception("could not render message %s", message.pk)
                if _attempt_failed(message, f"render: {exc!r}") == Message.Status.FAILED:
                    result.failed += 1
                else:
                    result.retried += 1
                continue
            email.connection = smtp
            _pacer.wait()
            try:
                smtp.send_messages([email])
            except Exception as exc:
                # smtplib's errors are OSErrors too; a refusal of this one message keeps
                # the connection, a lost connection (or 421) ends the batch.
                connection_lost = not isinstance(exc, smtplib.SMTPException) or isinstance(
                    exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError
                )
                connection_lost |= getattr(exc, "smtp_code", None) == 421
                if not connection_lost and not isinstance(exc, smtplib.SMTPException | OSError):
                    raise
                status = _attempt_failed(message, f"SMTP: {exc}")
                if status == Message.Status.FAILED:
                    result.failed += 1
                else:
                    result.retried += 1
                if connection_lost:
                    rest = [m.pk for m in messages[index + 1 :]]
                    _release(rest, delay=_backoff(1))
                    result.released += len(rest)
                    raise OutboxConnectionError(str(exc)) from exc
                continue
            marker.mark(message.pk)
            result.sent += 1
    finally:
        marker.close()
        try:
            smtp.close()
        except Exception:  # closing a broken connection must not hide the real error
            logger.debug("SMTP close failed", exc_info=True)
    return result


def outbox_drain(*, time_budget: float | None = None) -> BatchResult:
    """Send batches until the outbox has nothing due or the time budget is spent."""
    time_budget = settings.OUTBOX_DRAIN_SECONDS if time_budget is None else time_budget
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    while True:
        batch = outbox_send_batch()
        for name in ("claimed", "sent", "retried", "failed", "suppressed", "released"):
            setattr(total, name, getattr(total, name) + getattr(batch, name))
        if batch.claimed == 0 or time.monotonic() >= deadline:
            return total


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
