"""The outbox: messages written with the event that causes them, sent exactly once.

A Message row is inserted in the same transaction as its event, with a unique dedupe key,
so no event makes two messages and no committed event makes none. Senders (Celery tasks,
see customers/tasks.py) drain the outbox in batches:

1. claim a batch: pending rows (and rows whose sending lease expired) become `sending`
   with claimed_at = now, under FOR UPDATE SKIP LOCKED, so two senders never claim one row;
2. render and send each over one SMTP connection, and mark each `sent` in its own
   autocommit UPDATE right after the server accepted it (sent without waiting for its
   answer, which is collected before the next message can be accepted: _SentMarker);
3. a failed attempt goes back to `pending` with a backoff (or `failed` after
   OUTBOX_MAX_ATTEMPTS, keeping its last error).

A worker killed mid-batch leaves its batch `sending`. When the lease has run out the rows
are claimed again. All of them were never sent, except at most the one whose SMTP
transaction was under way at the kill: that one may arrive twice, with the same
Message-ID, so a mail system can drop the copy. Nothing is ever lost.
"""

from __future__ import annotations

import binascii
import contextlib
import datetime
import hashlib
import hmac
import logging
import re
import smtplib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formatdate, parseaddr
from html import escape as html_escape

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.core.mail.message import sanitize_address
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.template.loader import get_template
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.encoding import force_bytes
from psycopg import pq

from customers.models import Customer, Message, UpgradeRegistration

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
#
# The templates see exactly the context built in _template_context, nothing else: plain
# values and small dicts, not model instances, so that the context is a complete
# description of what a template can print. That makes rendering memoisable: all
# messages of a batch whose context differs only in the recipient's own fields (the
# SLOTS: name, postcode, order reference, queue position, unsubscribe link) share one
# render. The shared render is done with a marker in place of each slot, and each
# message's own values are put in place of the markers, escaped where the template
# escaped the marker. A slot may therefore only be printed plainly ({{ reference }}, no
# filters) or tested for truth; a slot whose value is falsy is rendered, not substituted,
# so `{% if position %}` always sees the real truth. test_outbox_render checks that the
# memoised output equals a direct render for every kind.

SLOTS = ("customer_name", "customer_postcode", "reference", "position", "unsubscribe_url")
# Private-use characters never occur in our data; "&" shows whether the template escaped
# the marker at that place (it becomes "&amp;").
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK_RE = re.compile("\ue000(\\d)(&|&amp;)\ue001")


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: dict[str, str]


@dataclass
class RenderCache:
    """Per-batch memo: reads shared by many messages, and template skeletons.

    Lives for one batch, so a render is never older than the batch it is sent in.
    """

    launches: dict[int, object] = field(default_factory=dict)
    next_delivery: dict[int, object] = field(default_factory=dict)
    served_through: dict[tuple[int, int, int], int] = field(default_factory=dict)
    preferred_store: dict[tuple[int, int], str | None] = field(default_factory=dict)
    skeletons: dict[tuple, tuple[list, list]] = field(default_factory=dict)
    signer: _UnsubscribeSigner | None = None
    unsubscribe_prefix: str = ""
    unsubscribe_suffix: str = ""


# The columns a batch reads per message (one values() query: no model instances).
_ROW_FIELDS = (
    "id",
    "kind",
    "message_id",
    "attempts",
    "context",
    "order_id",
    "launch_id",
    "customer_id",
    "customer__name",
    "customer__email",
    "customer__postcode",
    "customer__marketing_opt_out",
    "order__reference",
    "order__status",
    "order__wait_number",
    "order__fulfilment",
    "order__collect_by",
    "order__launch_id",
    "order__sku_id",
    "order__pool_id",
    "order__sku__name",
    "order__store__name",
)


def _row_from_message(message: Message) -> dict:
    """The same row for an unsaved or loaded Message instance (previews, tests)."""
    order, customer = message.order, message.customer
    return {
        "id": message.pk,
        "kind": message.kind,
        "message_id": message.message_id,
        "attempts": message.attempts,
        "context": message.context or {},
        "order_id": order.pk if order is not None else None,
        "launch_id": message.launch_id,
        "customer_id": customer.pk,
        "customer__name": customer.name,
        "customer__email": customer.email,
        "customer__postcode": customer.postcode,
        "customer__marketing_opt_out": customer.marketing_opt_out,
        "order__reference": order.reference if order is not None else None,
        "order__status": order.status if order is not None else None,
        "order__wait_number": order.wait_number if order is not None else None,
        "order__fulfilment": order.fulfilment if order is not None else None,
        "order__collect_by": order.collect_by if order is not None else None,
        "order__launch_id": order.launch_id if order is not None else None,
        "order__sku_id": order.sku_id if order is not None else None,
        "order__pool_id": order.pool_id if order is not None else None,
        "order__sku__name": order.sku.name if order is not None else None,
        "order__store__name": order.store.name if order is not None and order.store_id else None,
    }


def _is_marketing(row: dict) -> bool:
    kind = row["kind"]
    return kind in Message.MARKETING_KINDS or (kind == Message.Kind.APOLOGY and row["order_id"] is None)


def _launch_of(row: dict) -> int | None:
    return row["launch_id"] or row["order__launch_id"]


def _preload(rows: list[dict], cache_: RenderCache) -> None:
    """Every read the batch's renders need, a few queries for the whole batch.

    Done before sending starts, so nothing queries the database while a sent mark is in
    flight on the same connection (see _SentMarker).
    """
    from inventory.models import Launch
    from orders.models import PoolState  # orders imports customers: import late

    launch_ids = {pk for row in rows if (pk := _launch_of(row)) is not None} - set(cache_.launches)
    for launch in Launch.objects.filter(pk__in=launch_ids):
        cache_.launches[launch.pk] = launch
    apology_launches = {
        _launch_of(r) for r in rows if r["kind"] == Message.Kind.APOLOGY and _launch_of(r) is not None
    }
    for launch_id in apology_launches - set(cache_.next_delivery):
        launch = cache_.launches.get(launch_id)
        # inventory.Delivery read through the launch's reverse relation; orders don't own it.
        cache_.next_delivery[launch_id] = (
            launch.deliveries.filter(status="announced", expected_on__gte=timezone.localdate())
            .order_by("expected_on")
            .first()
            if launch is not None
            else None
        )
    pools = {
        (r["order__launch_id"], r["order__sku_id"], r["order__pool_id"])
        for r in rows
        if r["order__status"] == "waitlisted" and r["order__wait_number"] is not None
    } - set(cache_.served_through)
    if pools:
        for key in pools:
            cache_.served_through[key] = 0
        states = PoolState.objects.filter(
            launch_id__in={k[0] for k in pools},
            sku_id__in={k[1] for k in pools},
            pool_id__in={k[2] for k in pools},
        ).values_list("launch_id", "sku_id", "pool_id", "served_through")
        for launch_id, sku_id, pool_id, served in states:
            if (launch_id, sku_id, pool_id) in pools:
                cache_.served_through[(launch_id, sku_id, pool_id)] = served
    wanted = {
        (r["customer_id"], r["launch_id"])
        for r in rows
        if r["kind"] == Message.Kind.BACK_IN_STOCK and r["launch_id"] is not None
    } - set(cache_.preferred_store)
    if wanted:
        for key in wanted:
            cache_.preferred_store[key] = None
        registrations = UpgradeRegistration.objects.filter(
            customer_id__in={k[0] for k in wanted}, launch_id__in={k[1] for k in wanted}
        ).values_list("customer_id", "launch_id", "preferred_store__name")
        for customer_id, launch_id, store_name in registrations:
            if (customer_id, launch_id) in wanted:
                cache_.preferred_store[(customer_id, launch_id)] = store_name


def _queue_position(row: dict, cache_: RenderCache) -> int | None:
    """The order's honest place among orders still waiting in its pool (1 = next)."""
    if row["order__status"] != "waitlisted" or row["order__wait_number"] is None:
        return None
    served = cache_.served_through.get(
        (row["order__launch_id"], row["order__sku_id"], row["order__pool_id"]), 0
    )
    return max(row["order__wait_number"] - served, 1)


class _UnsubscribeSigner:
    """Makes exactly what unsubscribe_token_make makes, some twenty times faster.

    signing.dumps derives the HMAC key from the salt and SECRET_KEY for every token; here
    it is derived once and the keyed HMAC copied per token. Same serialisation, same
    timestamp, same signature: unsubscribe_token_verify (signing.loads) reads it.
    """

    def __init__(self) -> None:
        signer = signing.TimestampSigner(salt=UNSUBSCRIBE_SALT)
        hasher = getattr(hashlib, signer.algorithm)
        key = hasher(force_bytes(signer.salt + "signer") + force_bytes(signer.key)).digest()
        self.mac = hmac.new(key, digestmod=hasher)
        self.sep = signer.sep

    def token(self, customer_id: int) -> str:
        # JSONSerializer writes {"c":<id>} compactly; the id is an int, so this is the same.
        payload = signing.b64_encode(b'{"c":%d}' % customer_id).decode()
        value = f"{payload}{self.sep}{signing.b62_encode(int(time.time()))}"
        mac = self.mac.copy()
        mac.update(value.encode())
        return f"{value}{self.sep}{signing.b64_encode(mac.digest()).decode()}"


def _unsubscribe_url(customer_id: int, cache_: RenderCache) -> str:
    if cache_.signer is None:
        # One key derivation and one reverse() per batch.
        cache_.signer = _UnsubscribeSigner()
        marker = "TOKEN0MARKER"
        path = reverse("unsubscribe", kwargs={"token": marker})
        cache_.unsubscribe_prefix = settings.SITE_URL.rstrip("/") + path[: path.index(marker)]
        cache_.unsubscribe_suffix = path[path.index(marker) + len(marker) :]
    return cache_.unsubscribe_prefix + cache_.signer.token(customer_id) + cache_.unsubscribe_suffix


def _slot_values(row: dict, cache_: RenderCache) -> list:
    """The recipient's own fields, in SLOTS order."""
    kind = row["kind"]
    slots = [
        row["customer__name"],
        row["customer__postcode"],
        row["order__reference"] or "",
        None,
        _unsubscribe_url(row["customer_id"], cache_) if _is_marketing(row) else "",
    ]
    if kind == Message.Kind.ORDER_RECEIVED:
        slots[3] = (row["context"] or {}).get("position") or _queue_position(row, cache_)
    elif kind == Message.Kind.APOLOGY:
        slots[3] = _queue_position(row, cache_)
    return slots


def _template_context(
    row: dict, cache_: RenderCache, slots: list, *, markers: bool = True
) -> tuple[tuple, dict]:
    """(memo key, template context) of one message, with markers in place of its slots.

    With markers=False the context holds the recipient's own values (a direct render).
    """
    kind = row["kind"]
    launch_id = _launch_of(row)
    launch = cache_.launches.get(launch_id) if launch_id is not None else None
    shown = [
        f"{_MARK_OPEN}{i}&{_MARK_CLOSE}" if value and markers else value for i, value in enumerate(slots)
    ]  # a falsy slot is rendered as itself (and is part of the key)
    order = None
    order_key = None
    if row["order_id"] is not None:
        order_key = (
            row["order__sku__name"],
            row["order__store__name"],
            row["order__fulfilment"],
            row["order__collect_by"],
            row["order__status"],
        )
        order = {
            "sku": {"name": order_key[0]},
            "store": {"name": order_key[1]} if order_key[1] is not None else None,
            "fulfilment": order_key[2],
            "collect_by": order_key[3],
            "status": order_key[4],
            "reference": shown[2],
        }
    next_delivery = cache_.next_delivery.get(launch_id) if kind == Message.Kind.APOLOGY else None
    store_name = (
        cache_.preferred_store.get((row["customer_id"], row["launch_id"]))
        if kind == Message.Kind.BACK_IN_STOCK
        else None
    )
    context = {
        "customer": {"name": shown[0], "postcode": shown[1]},
        "order": order,
        "launch": launch,
        "reference": shown[2],
        "position": shown[3],
        "unsubscribe_url": shown[4],
        "site_url": settings.SITE_URL.rstrip("/"),
        "next_delivery": next_delivery,
        "store": {"name": store_name} if store_name else None,
    }
    key = (
        kind,
        launch_id,
        order_key,
        next_delivery.pk if next_delivery is not None else None,
        store_name,
        tuple(value if not value else True for value in slots),
    )
    return key, context


def _skeleton(rendered: str) -> list:
    """Split a render into literal text and (slot index, escaped) markers."""
    parts: list = []
    last = 0
    for match in _MARK_RE.finditer(rendered):
        parts.append(rendered[last : match.start()])
        parts.append((int(match.group(1)), match.group(2) != "&"))
        last = match.end()
    parts.append(rendered[last:])
    if _MARK_OPEN in parts[-1] or any(isinstance(p, str) and _MARK_OPEN in p for p in parts):
        # A slot went through a filter: the template broke the rule above.
        raise ValueError("an email template changed a per-recipient field; print it plainly")
    return parts


def _fill(parts: list, texts: list[str], escaped: list[str]) -> str:
    return "".join(p if isinstance(p, str) else (escaped if p[1] else texts)[p[0]] for p in parts)


def _render_row(row: dict, cache_: RenderCache) -> RenderedEmail:
    slots = _slot_values(row, cache_)
    key, context = _template_context(row, cache_, slots)
    texts = ["" if v is None else str(formats.localize(v)) for v in slots]
    escaped = [html_escape(t) for t in texts]  # what Django's escape filter does
    skeleton = cache_.skeletons.get(key)
    if skeleton is None:
        templates = [get_template(f"emails/{row['kind']}.{ext}") for ext in ("txt", "html")]
        skeleton = tuple(_skeleton(t.render(context)) for t in templates)
        # Once per skeleton, a direct render must agree: a template that passed a
        # per-recipient field through a filter fails here, visibly, not in customers' mail.
        direct = _template_context(row, cache_, slots, markers=False)[1]
        for template, parts in zip(templates, skeleton, strict=True):
            if template.render(direct) != _fill(parts, texts, escaped):
                raise ValueError(f"emails/{row['kind']}: a per-recipient field went through a filter")
        cache_.skeletons[key] = skeleton
    launch = context["launch"]
    subject = SUBJECTS[row["kind"]].format(reference=texts[2], launch=launch or "")
    headers = {"Message-ID": f"<{row['message_id']}@{settings.OUTBOX_MESSAGE_ID_DOMAIN}>"}
    if slots[4]:
        headers["List-Unsubscribe"] = f"<{slots[4]}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return RenderedEmail(
        subject=subject,
        text=_fill(skeleton[0], texts, escaped),
        html=_fill(skeleton[1], texts, escaped),
        headers=headers,
    )


def message_render(*, message: Message, render_cache: RenderCache | None = None) -> RenderedEmail:
    """Subject, plain text and HTML of a message, from templates/emails/<kind>.*.

    Rendered at send time from the order's current data, so the email tells the truth as
    it is when it leaves, not as it was when the row was written.
    """
    render_cache = render_cache or RenderCache()
    row = _row_from_message(message)
    if message.launch is not None:
        render_cache.launches.setdefault(message.launch.pk, message.launch)
    elif message.order is not None:
        render_cache.launches.setdefault(message.order.launch_id, message.order.launch)
    _preload([row], render_cache)
    return _render_row(row, render_cache)


def message_email(*, message: Message, render_cache: RenderCache | None = None) -> EmailMultiAlternatives:
    """The message as a Django email, for backends other than SMTP (locmem, console)."""
    return _django_email(message_render(message=message, render_cache=render_cache), message.customer.email)


def _django_email(rendered: RenderedEmail, to: str) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=rendered.headers,
    )
    email.attach_alternative(rendered.html, "text/html")
    return email


# --- MIME ---------------------------------------------------------------------------------
#
# Django's EmailMultiAlternatives builds a tree of email.mime objects and flattens it with
# the generator: about 2 ms an email, more than the SMTP exchange itself. The message is
# always the same shape (multipart/alternative: text/plain then text/html, UTF-8), so it
# is written directly: 7bit when a part is ASCII with short lines, else quoted-printable
# (safe without 8BITMIME); non-ASCII headers as RFC 2047 words, addresses through
# Django's sanitize_address. test_outbox_render parses the bytes back with the stdlib.

_SAFE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]+")


def _header_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("a header value may not contain a line break")
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode()


def _address(value: str) -> str:
    if _SAFE_ADDRESS.fullmatch(value):
        return value
    return sanitize_address(value, "utf-8")


def _envelope_address(value: str) -> str:
    """The bare address for MAIL FROM / RCPT TO."""
    if _SAFE_ADDRESS.fullmatch(value):
        return value
    return parseaddr(sanitize_address(value, "utf-8"))[1]


def _mime_part(content_type: str, body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if body.isascii() and all(len(line) <= 998 for line in body.split("\n")):
        encoding = "7bit"
    else:
        encoding = "quoted-printable"
        body = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    return f'Content-Type: {content_type}; charset="utf-8"\nContent-Transfer-Encoding: {encoding}\n\n{body}\n'


def message_mime(*, rendered: RenderedEmail, from_header: str, to: str) -> bytes:
    """The message as SMTP DATA: CRLF lines, leading dots doubled, ending in CRLF.CRLF."""
    text = _mime_part("text/plain", rendered.text)
    html = _mime_part("text/html", rendered.html)
    boundary = f"=_ld{uuid.uuid4().hex}"
    head = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "MIME-Version: 1.0",
        f"Subject: {_header_value(rendered.subject)}",
        f"From: {from_header}",
        f"To: {_address(to)}",
        f"Date: {formatdate(localtime=settings.EMAIL_USE_LOCALTIME)}",
    ]
    head += [f"{name}: {_header_value(value)}" for name, value in rendered.headers.items()]
    data = "\n".join(head) + f"\n\n--{boundary}\n{text}--{boundary}\n{html}--{boundary}--\n"
    data = data.replace("\n", "\r\n")
    if "\r\n." in data:
        data = data.replace("\r\n.", "\r\n..")
    return (data + ".\r\n").encode("ascii")


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


def _attempt_failed(row: dict, error: str) -> str:
    """Back to pending with a backoff, or failed for good after the last attempt."""
    if row["attempts"] >= settings.OUTBOX_MAX_ATTEMPTS:
        status, changes = Message.Status.FAILED, {}
    else:
        status = Message.Status.PENDING
        changes = {"next_attempt_at": timezone.now() + _backoff(row["attempts"])}
    Message.objects.filter(pk=row["id"], status=Message.Status.SENDING).update(
        status=status, claimed_at=None, last_error=error[:2000], **changes
    )
    return status


class _SentMarker:
    """Marks accepted messages sent, one autocommit UPDATE each, the moment SMTP says 250.

    On PostgreSQL the UPDATE is sent without waiting for its answer (libpq's asynchronous
    query), so the database applies it while the next message's MAIL, RCPT and DATA go
    out; its answer is collected (wait) before that next message's body is sent, which is
    the moment the server could accept it. So at any instant at most one accepted message
    is not yet marked, as with a blocking UPDATE, and a kill can resend only that one.
    Anything else that uses the connection must call wait() first.

    The batch's connection also skips waiting for the WAL flush (synchronous_commit off,
    reset afterwards). A killed worker cannot lose a mark, since PostgreSQL already has
    it; only a crash of PostgreSQL itself within a fraction of a second could, and then
    those messages go again with the same Message-ID. The trade saves one fsync per email,
    which would otherwise cost more than the send itself.
    """

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.postgres = connection.vendor == "postgresql"
        table = Message._meta.db_table
        self.pending = False
        if self.postgres:
            self.cursor.execute("SET synchronous_commit TO OFF")
            self.pgconn = connection.connection.pgconn
            self.sql = f"UPDATE {table} SET status = 'sent', sent_at = now(), claimed_at = NULL WHERE id = $1".encode()  # noqa: S608 - table name from the model, value bound
        else:
            self.sql = f"UPDATE {table} SET status = %s, sent_at = %s, claimed_at = NULL WHERE id = %s"  # noqa: S608

    def mark(self, pk: int) -> None:
        if not self.postgres:
            self.cursor.execute(self.sql, [Message.Status.SENT, timezone.now(), pk])
            return
        self.wait()
        self.pgconn.send_query_params(self.sql, [str(pk).encode()])
        self.pending = True

    def wait(self) -> None:
        """Collect the answer of the mark in flight; raise if it failed."""
        if not self.pending:
            return
        self.pending = False
        errors = []
        while (result := self.pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:
                errors.append(result.get_error_message())
        if errors:
            raise DatabaseError(f"marking a message sent failed: {errors[0]}")

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.postgres:
                self.cursor.execute("RESET synchronous_commit")
            self.cursor.close()


def _smtp_refused(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal, as smtplib's sendmail does: 421 ends the session, else RSET."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def _smtp_send(smtp: smtplib.SMTP, *, sender: str, rcpt: str, data: bytes, before_body, meanwhile) -> None:
    """One SMTP transaction, as smtplib's sendmail, with two hooks around the body.

    before_body runs after the server said 354 and before the body (the moment from
    which the server may accept the message); meanwhile runs while the server digests
    the body, so this process works on the next message instead of waiting.
    `data` is ready for the wire (message_mime); sender and rcpt are bare addresses.
    """
    smtp.putcmd("mail", f"FROM:<{sender}>")
    code, reply = smtp.getreply()
    if code != 250:
        _smtp_refused(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    smtp.putcmd("rcpt", f"TO:<{rcpt}>")
    code, reply = smtp.getreply()
    if code not in (250, 251):
        _smtp_refused(smtp, code)
        raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        _smtp_refused(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    try:
        before_body()
    except BaseException:
        smtp.close()  # mid-DATA: drop the session so the server discards the message
        raise
    smtp.send(data)
    meanwhile()
    code, reply = smtp.getreply()
    if code != 250:
        _smtp_refused(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


@dataclass
class _Prepared:
    row: dict
    rendered: RenderedEmail | None = None
    data: bytes | None = None
    rcpt: str = ""
    error: Exception | None = None


def _prepare(row: dict, render_cache: RenderCache, from_header: str, raw: bool) -> _Prepared:
    prepared = _Prepared(row=row)
    try:
        prepared.rendered = _render_row(row, render_cache)
        if raw:
            prepared.rcpt = _envelope_address(row["customer__email"])
            prepared.data = message_mime(
                rendered=prepared.rendered, from_header=from_header, to=row["customer__email"]
            )
    except Exception as exc:  # a template or data fault: kept for the send loop to record
        logger.exception("could not render message %s", row["id"])
        prepared.error = exc
    return prepared


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
    rows = list(Message.objects.filter(pk__in=ids).order_by("id").values(*_ROW_FIELDS))
    opted_out = {r["id"] for r in rows if r["customer__marketing_opt_out"] and _is_marketing(r)}
    if opted_out:
        Message.objects.filter(pk__in=opted_out).update(status=Message.Status.SUPPRESSED, claimed_at=None)
        result.suppressed = len(opted_out)
        rows = [r for r in rows if r["id"] not in opted_out]
    if not rows:
        return result

    backend = get_connection()
    try:
        backend.open()
    except (OSError, smtplib.SMTPException) as exc:
        _release([r["id"] for r in rows], error=f"SMTP connection: {exc}", delay=_backoff(1))
        raise OutboxConnectionError(str(exc)) from exc
    # With Django's SMTP backend, its open smtplib connection sends bytes built here;
    # any other backend (locmem in tests, console) gets Django email objects.
    smtp = backend.connection if isinstance(backend, SMTPEmailBackend) else None
    from_header = sanitize_address(settings.DEFAULT_FROM_EMAIL, "utf-8")
    envelope_from = _envelope_address(from_header)
    render_cache = RenderCache()
    marker = None
    try:
        _preload(rows, render_cache)
        marker = _SentMarker()
        if smtp is not None:
            smtp.ehlo_or_helo_if_needed()
        upcoming = _prepare(rows[0], render_cache, from_header, smtp is not None)
        for index in range(len(rows)):
            current = upcoming
            upcoming = None

            def prepare_next(index=index):
                nonlocal upcoming
                if index + 1 < len(rows):
                    upcoming = _prepare(rows[index + 1], render_cache, from_header, smtp is not None)

            if time.monotonic() - started > budget:
                marker.wait()
                rest = [r["id"] for r in rows[index:]]
                _release(rest)
                result.released += len(rest)
                break
            if current.error is not None:
                marker.wait()
                status = _attempt_failed(current.row, f"render: {current.error!r}")
                result.failed += status == Message.Status.FAILED
                result.retried += status != Message.Status.FAILED
                prepare_next()
                continue
            _pacer.wait()
            try:
                if smtp is not None:
                    _smtp_send(
                        smtp,
                        sender=envelope_from,
                        rcpt=current.rcpt,
                        data=current.data,
                        before_body=marker.wait,
                        meanwhile=prepare_next,
                    )
                else:
                    marker.wait()
                    backend.send_messages([_django_email(current.rendered, current.row["customer__email"])])
            except Exception as exc:
                # smtplib's errors are OSErrors too; a refusal of this one message keeps
                # the connection, a lost connection (or 421) ends the batch.
                connection_lost = not isinstance(exc, smtplib.SMTPException) or isinstance(
                    exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError
                )
                connection_lost |= getattr(exc, "smtp_code", None) == 421
                if isinstance(exc, smtplib.SMTPRecipientsRefused):
                    connection_lost |= any(code == 421 for code, _ in exc.recipients.values())
                if not isinstance(exc, smtplib.SMTPException | OSError):
                    raise
                marker.wait()
                status = _attempt_failed(current.row, f"SMTP: {exc}")
                result.failed += status == Message.Status.FAILED
                result.retried += status != Message.Status.FAILED
                if connection_lost:
                    rest = [r["id"] for r in rows[index + 1 :]]
                    _release(rest, delay=_backoff(1))
                    result.released += len(rest)
                    raise OutboxConnectionError(str(exc)) from exc
                if upcoming is None:
                    prepare_next()
                continue
            marker.mark(current.row["id"])
            result.sent += 1
            if upcoming is None:  # not prepared while sending (a non-SMTP backend)
                marker.wait()
                prepare_next()
    finally:
        try:
            if marker is not None:
                marker.close()
        finally:
            try:
                backend.close()
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
