"""Subject, plain text and HTML of outbox messages, from templates/emails/<kind>.*.

The templates see exactly the context built in _template_context, nothing else: plain
values and small dicts, not model instances, so that the context is a complete
description of what a template can print. That makes rendering memoisable: all
messages of a batch whose context differs only in the recipient's own fields (the
SLOTS: name, postcode, order reference, queue position, unsubscribe link) share one
render. The shared render is done with a marker in place of each slot, and each
message's own values are put in place of the markers, escaped where the template
escaped the marker. A slot may therefore only be printed plainly ({{ reference }}, no
filters) or tested for truth; a slot whose value is falsy is rendered, not substituted,
so `{% if position %}` always sees the real truth. test_outbox_render checks that the
memoised output equals a direct render for every kind.

What a message says about its order comes from the row itself (facts.py), so rendering
reads no order; names of SKUs, stores and launches are read from their own tables.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from html import escape as html_escape
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import get_template
from django.utils import formats

from customers.models import Message, UpgradeRegistration
from customers.services.outbox.facts import OrderFacts
from customers.services.outbox.notice_links import claim_url
from customers.services.outbox.unsubscribe import UnsubscribeLinks
from inventory.models import SKU, Launch
from inventory.selectors import delivery_next
from stores.models import Store

SUBJECTS = {
    Message.Kind.ORDER_RECEIVED: "We have your order {reference}",
    Message.Kind.ALLOCATED: "Your phone is reserved: order {reference}",
    Message.Kind.READY_TO_COLLECT: "Ready to collect: order {reference}",
    Message.Kind.COLLECTION_EXPIRED: "Collection deadline passed: order {reference}",
    Message.Kind.ORDER_CANCELLED: "Order {reference} is cancelled",
    Message.Kind.APOLOGY: "We're sorry: {launch}",
    Message.Kind.BACK_IN_STOCK: "{launch} is back in stock",
    Message.Kind.STOCK_NOTICE: "{launch}: a phone is held for you for a short while",
    Message.Kind.WEBHOOK_DISABLED: "Webhook endpoint switched off: {partner}",
}

SLOTS = ("customer_name", "customer_postcode", "reference", "position", "unsubscribe_url", "claim_url")
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

    launches: dict[int, Launch] = field(default_factory=dict)
    sku_names: dict[int, str] = field(default_factory=dict)
    store_names: dict[int, str] = field(default_factory=dict)
    next_delivery: dict[tuple[int, int | None], Any] = field(default_factory=dict)
    preferred_store: dict[tuple[int, int], str | None] = field(default_factory=dict)
    skeletons: dict[tuple, tuple[list, list]] = field(default_factory=dict)
    links: UnsubscribeLinks | None = None

    def unsubscribe_url(self, customer_id: int) -> str:
        if self.links is None:
            self.links = UnsubscribeLinks()
        return self.links.url(customer_id)


# The columns a batch reads per message (one values() query: no model instances).
ROW_FIELDS = (
    "id",
    "kind",
    "message_id",
    "attempts",
    "context",
    "order_reference",
    "launch_id",
    "customer_id",
    "customer__name",
    "customer__email",
    "customer__postcode",
    "customer__marketing_opt_out",
    "to_email",
)


def row_from_message(message: Message) -> dict:
    """The same row for an unsaved or loaded Message instance (previews, tests)."""
    customer = message.customer
    return {
        "id": message.pk,
        "kind": message.kind,
        "message_id": message.message_id,
        "attempts": message.attempts,
        "context": message.context or {},
        "order_reference": message.order_reference,
        "launch_id": message.launch_id,
        "customer_id": customer.pk if customer is not None else None,
        "customer__name": customer.name if customer is not None else None,
        "customer__email": customer.email if customer is not None else None,
        "customer__postcode": customer.postcode if customer is not None else None,
        "customer__marketing_opt_out": customer.marketing_opt_out if customer is not None else False,
        "to_email": message.to_email,
    }


def row_recipient(row: dict) -> str:
    """Where a message goes: its customer, or to_email for mail to a non-customer."""
    return row["customer__email"] or row["to_email"]


def row_is_marketing(row: dict) -> bool:
    """Marketing-type mail honours the customer's unsubscribe (Message.is_marketing)."""
    kind = row["kind"]
    return kind in Message.MARKETING_KINDS or (kind == Message.Kind.APOLOGY and not row["order_reference"])


def _facts(row: dict) -> OrderFacts | None:
    return OrderFacts.from_row(reference=row["order_reference"], context=row["context"] or {})


def preload(rows: list[dict], cache_: RenderCache) -> None:
    """Every read the batch's renders need, a few queries for the whole batch.

    Done before sending starts, so nothing queries the database while a sent mark is in
    flight on the same connection (see sender.SentMarker).
    """
    launch_ids = {r["launch_id"] for r in rows if r["launch_id"] is not None} - set(cache_.launches)
    for launch in Launch.objects.filter(pk__in=launch_ids):
        cache_.launches[launch.pk] = launch
    facts = [f for r in rows if (f := _facts(r)) is not None]
    offers = [_offer(r) for r in rows if r["kind"] == Message.Kind.STOCK_NOTICE]
    sku_ids = ({f.sku_id for f in facts} | {o[0] for o in offers}) - set(cache_.sku_names)
    cache_.sku_names.update(SKU.objects.filter(pk__in=sku_ids).values_list("pk", "name"))
    store_ids = (
        {f.store_id for f in facts if f.store_id is not None} | {o[1] for o in offers if o[1] is not None}
    ) - set(cache_.store_names)
    cache_.store_names.update(Store.objects.filter(pk__in=store_ids).values_list("pk", "name"))
    for row in rows:
        if row["kind"] == Message.Kind.APOLOGY and row["launch_id"] is not None:
            key = _delivery_key(row)
            if key not in cache_.next_delivery:
                cache_.next_delivery[key] = delivery_next(launch_id=key[0], sku_id=key[1])
    wanted = {
        (r["customer_id"], r["launch_id"])
        for r in rows
        if r["kind"] == Message.Kind.BACK_IN_STOCK and r["launch_id"] is not None
    } - set(cache_.preferred_store)
    if wanted:
        for customer_launch in wanted:
            cache_.preferred_store[customer_launch] = None
        registrations = UpgradeRegistration.objects.filter(
            customer_id__in={k[0] for k in wanted}, launch_id__in={k[1] for k in wanted}
        ).values_list("customer_id", "launch_id", "preferred_store__name")
        for customer_id, launch_id, store_name in registrations:
            if (customer_id, launch_id) in wanted:
                cache_.preferred_store[(customer_id, launch_id)] = store_name


def _offer(row: dict) -> tuple[int, int | None, datetime.datetime | None]:
    """A stock notice's (SKU id, store id or None, window's end), from its row's context."""
    context = row["context"] or {}
    closes_at = context.get("closes_at")
    return (
        context.get("sku") or 0,
        context.get("store"),
        datetime.datetime.fromisoformat(closes_at) if closes_at else None,
    )


def _delivery_key(row: dict) -> tuple[int, int | None]:
    """An apology about an order names the next delivery bringing its SKU; one to a
    customer without an order, the launch's next delivery."""
    facts = _facts(row)
    return (row["launch_id"], facts.sku_id if facts is not None else None)


def _slot_values(row: dict, cache_: RenderCache) -> list:
    """The recipient's own fields, in SLOTS order."""
    facts = _facts(row)
    position = None
    if row["kind"] in (Message.Kind.ORDER_RECEIVED, Message.Kind.APOLOGY) and facts is not None:
        position = facts.position
    return [
        row["customer__name"],
        row["customer__postcode"],
        row["order_reference"] or "",
        position,
        cache_.unsubscribe_url(row["customer_id"]) if row_is_marketing(row) else "",
        _claim_url(row),
    ]


def _claim_url(row: dict) -> str:
    if row["kind"] != Message.Kind.STOCK_NOTICE:
        return ""
    expires_at = _offer(row)[2]
    notice_id = (row["context"] or {}).get("notice")
    if notice_id is None or expires_at is None:
        return ""
    return claim_url(notice_id=notice_id, expires_at=expires_at)


def _template_context(
    row: dict, cache_: RenderCache, slots: list, *, markers: bool = True
) -> tuple[tuple, dict]:
    """(memo key, template context) of one message, with markers in place of its slots.

    With markers=False the context holds the recipient's own values (a direct render).
    """
    kind = row["kind"]
    launch_id = row["launch_id"]
    launch = cache_.launches.get(launch_id) if launch_id is not None else None
    shown = [
        f"{_MARK_OPEN}{i}&{_MARK_CLOSE}" if value and markers else value for i, value in enumerate(slots)
    ]  # a falsy slot is rendered as itself (and is part of the key)
    facts = _facts(row)
    order = None
    order_key = None
    if facts is not None:
        store_name = cache_.store_names.get(facts.store_id) if facts.store_id is not None else None
        order_key = (cache_.sku_names.get(facts.sku_id, ""), store_name, facts.fulfilment, facts.collect_by)
        order = {
            "sku": {"name": order_key[0]},
            "store": {"name": store_name} if store_name is not None else None,
            "fulfilment": facts.fulfilment,
            "collect_by": facts.collect_by,
            "reference": shown[2],
        }
    next_delivery = cache_.next_delivery.get(_delivery_key(row)) if kind == Message.Kind.APOLOGY else None
    store_name = (
        cache_.preferred_store.get((row["customer_id"], row["launch_id"]))
        if kind == Message.Kind.BACK_IN_STOCK
        else None
    )
    offer = None
    offer_key = None
    if kind == Message.Kind.STOCK_NOTICE:
        sku_id, offer_store_id, closes_at = _offer(row)
        offer_store = cache_.store_names.get(offer_store_id) if offer_store_id is not None else None
        offer_key = (cache_.sku_names.get(sku_id, ""), offer_store, closes_at)
        offer = {
            "sku": {"name": offer_key[0]},
            "store": {"name": offer_store} if offer_store is not None else None,
            "closes_at": closes_at,
        }
    context = {
        "customer": {"name": shown[0], "postcode": shown[1]},
        "order": order,
        "launch": launch,
        "reference": shown[2],
        "position": shown[3],
        "unsubscribe_url": shown[4],
        "claim_url": shown[5],
        "offer": offer,
        "site_url": settings.SITE_URL.rstrip("/"),
        "next_delivery": next_delivery,
        "store": {"name": store_name} if store_name else None,
        # Mail to a partner's contact says everything through its row's context.
        "notice": row["context"] if kind == Message.Kind.WEBHOOK_DISABLED else None,
    }
    key = (
        kind,
        launch_id,
        order_key,
        next_delivery.pk if next_delivery is not None else None,
        store_name,
        offer_key,
        tuple(value if not value else True for value in slots),
        row["id"] if kind == Message.Kind.WEBHOOK_DISABLED else None,  # never shared
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
    if any(isinstance(p, str) and _MARK_OPEN in p for p in parts):
        # A slot went through a filter: the template broke the rule above.
        raise ValueError("an email template changed a per-recipient field; print it plainly")
    return parts


def _fill(parts: list, texts: list[str], escaped: list[str]) -> str:
    return "".join(p if isinstance(p, str) else (escaped if p[1] else texts)[p[0]] for p in parts)


def render_row(row: dict, cache_: RenderCache) -> RenderedEmail:
    """One message, from a row of ROW_FIELDS after preload() saw it."""
    slots = _slot_values(row, cache_)
    key, context = _template_context(row, cache_, slots)
    texts = ["" if v is None else str(formats.localize(v)) for v in slots]
    escaped = [html_escape(t) for t in texts]  # what Django's escape filter does
    skeleton = cache_.skeletons.get(key)
    if skeleton is None:
        templates = [get_template(f"emails/{row['kind']}.{ext}") for ext in ("txt", "html")]
        skeleton = (_skeleton(templates[0].render(context)), _skeleton(templates[1].render(context)))
        # Once per skeleton, a direct render must agree: a template that passed a
        # per-recipient field through a filter fails here, visibly, not in customers' mail.
        direct = _template_context(row, cache_, slots, markers=False)[1]
        for template, parts in zip(templates, skeleton, strict=True):
            if template.render(direct) != _fill(parts, texts, escaped):
                raise ValueError(f"emails/{row['kind']}: a per-recipient field went through a filter")
        cache_.skeletons[key] = skeleton
    launch = context["launch"]
    notice = context["notice"] or {}
    subject = SUBJECTS[row["kind"]].format(
        reference=texts[2], launch=launch or "", partner=notice.get("partner_name", "")
    )
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
    """One message's email, rendered as the sender would send it (previews, tests)."""
    render_cache = render_cache or RenderCache()
    row = row_from_message(message)
    preload([row], render_cache)
    return render_row(row, render_cache)


def message_email(*, message: Message, render_cache: RenderCache | None = None) -> EmailMultiAlternatives:
    """The message as a Django email, for backends other than SMTP (locmem, console)."""
    return django_email(
        message_render(message=message, render_cache=render_cache), row_recipient(row_from_message(message))
    )


def django_email(rendered: RenderedEmail, to: str) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=rendered.headers,
    )
    email.attach_alternative(rendered.html, "text/html")
    return email
