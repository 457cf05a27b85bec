"""The outbox's fast path says exactly what the templates say.

The sender renders each template once per batch for messages that differ only in their
recipient's own fields and writes the MIME bytes itself (customers/services/outbox.py).
These tests hold it to the straightforward way: Django templates rendered with the
model instances, and the stdlib's parser reading the bytes back.
"""

import datetime
import email
import email.policy
import math

import psycopg
import pytest
import time_machine
from django.conf import settings
from django.core import signing
from django.db import connection
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone

from customers.models import Message
from customers.services import outbox
from customers.services.outbox import OrderFacts
from customers.tests.conftest import allocated_messages, order_facts
from customers.tests.factories import CustomerFactory, RegistrationFactory
from inventory.models import SKU, Delivery
from inventory.selectors import delivery_next
from stores.models import Store
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

# Names that HTML escaping, non-ASCII encoding and repeated renders would each trip over.
NAMES = ["Ann O'Neil & <Sons>", 'Zoë "Z" Brontë', "Bob", "Émile Ünal-Šťastný", "Eve"]


def reference_render(message: Message) -> tuple[str, str]:
    """The email as plain Django rendering with model instances makes it (no memo)."""
    facts = OrderFacts.from_row(reference=message.order_reference, context=message.context or {})
    launch = message.launch
    order = None
    if facts is not None:
        order = {
            "sku": SKU.objects.get(pk=facts.sku_id),
            "store": Store.objects.get(pk=facts.store_id) if facts.store_id else None,
            "fulfilment": facts.fulfilment,
            "collect_by": facts.collect_by,
        }
    offer = None
    claim_url = ""
    if message.kind == Message.Kind.STOCK_NOTICE:
        closes_at = datetime.datetime.fromisoformat(message.context["closes_at"])
        store_id = message.context["store"]
        offer = {
            "sku": SKU.objects.get(pk=message.context["sku"]),
            "store": Store.objects.get(pk=store_id) if store_id else None,
            "closes_at": closes_at,
        }
        token = signing.dumps(
            {"n": message.context["notice"], "x": math.ceil(closes_at.timestamp())},
            salt="launchday.orders.stock-notice-claim",
            compress=False,
        )
        claim_url = f"{settings.SITE_URL.rstrip('/')}/upgrade/claim/{token}/"
    marketing = message.is_marketing
    token = signing.dumps({"c": message.customer.pk}, salt=outbox.UNSUBSCRIBE_SALT, compress=False)
    unsubscribe = reverse("unsubscribe", kwargs={"token": token})
    registration = message.customer.registrations.filter(launch=launch).first()
    context = {
        "customer": message.customer,
        "order": order,
        "launch": launch,
        "reference": message.order_reference,
        "site_url": settings.SITE_URL.rstrip("/"),
        "unsubscribe_url": settings.SITE_URL.rstrip("/") + unsubscribe if marketing else "",
        "position": facts.position
        if facts is not None and message.kind in ("order_received", "apology")
        else None,
        "next_delivery": delivery_next(launch_id=launch.pk, sku_id=facts.sku_id if facts else None)
        if message.kind == Message.Kind.APOLOGY
        else None,
        "store": registration.preferred_store
        if registration and message.kind == Message.Kind.BACK_IN_STOCK
        else None,
        "offer": offer,
        "claim_url": claim_url,
    }
    return (
        get_template(f"emails/{message.kind}.txt").render(context),
        get_template(f"emails/{message.kind}.html").render(context),
    )


@pytest.fixture
def varied_messages(launch_with_sku):
    """Every kind, to customers with awkward names, with and without orders and stores."""
    launch, sku = launch_with_sku
    launch.name = "Phone & Co «Pro»"
    launch.save(update_fields=["name"])
    oxford = StoreFactory(name="Oxford St & Regent's")
    Delivery.objects.create(
        reference="D-NEXT", launch=launch, expected_on=timezone.localdate() + datetime.timedelta(days=7)
    )
    messages = []
    for index, name in enumerate(NAMES):
        customer = CustomerFactory(name=name, postcode=f"N{index} 1AA")
        RegistrationFactory(
            customer=customer, launch=launch, preferred_sku=sku, preferred_store=oxford if index % 2 else None
        )
        store = oxford if index % 2 else None
        # Three wait (6th, 7th, 8th in the queue when told), two were served.
        facts = order_facts(
            sku=sku,
            store=store,
            position=6 + index if index < 3 else None,
            collect_by=timezone.now() + datetime.timedelta(days=3) if store else None,
        )
        for kind in Message.Kind.values:
            with_order = kind not in (Message.Kind.BACK_IN_STOCK, Message.Kind.STOCK_NOTICE) and not (
                kind == Message.Kind.APOLOGY and index == 4
            )
            context = facts.context() if with_order else {}
            if kind == Message.Kind.STOCK_NOTICE:  # a notice names its held units, no order
                closes_at = timezone.now() + datetime.timedelta(hours=2)
                context = {"notice": 1000 + index, "sku": sku.pk, "store": store.pk if store else None}
                context["closes_at"] = closes_at.isoformat()
            messages.append(
                Message.objects.create(
                    kind=kind,
                    dedupe_key=f"{kind}:{index}",
                    customer=customer,
                    order_reference=facts.reference if with_order else "",
                    launch=launch,
                    context=context,
                )
            )
    return messages


@time_machine.travel(datetime.datetime(2008, 7, 11, 8, 0, tzinfo=datetime.UTC), tick=False)
def test_memoised_render_equals_a_direct_render_for_every_kind(varied_messages):
    render_cache = outbox.RenderCache()  # shared, so later messages reuse earlier skeletons
    for message in varied_messages * 2:
        message = Message.objects.select_related("customer", "launch").get(pk=message.pk)
        rendered = outbox.message_render(message=message, render_cache=render_cache)
        text, html = reference_render(message)
        assert rendered.text == text, (message.kind, message.customer.name)
        assert rendered.html == html, (message.kind, message.customer.name)
    # Many messages, far fewer renders: customers' own fields are substituted.
    assert len(render_cache.skeletons) < len(varied_messages)
    assert any("&amp; &lt;Sons&gt;" in outbox.message_render(message=m).html for m in varied_messages)


@time_machine.travel(datetime.datetime(2008, 7, 11, 8, 0, tzinfo=datetime.UTC), tick=False)
def test_fast_unsubscribe_token_is_what_signing_dumps_makes():
    signer = outbox.unsubscribe.UnsubscribeSigner()
    for customer_id in (1, 42, 10**9):
        token = signer.token(customer_id)
        assert token == signing.dumps({"c": customer_id}, salt=outbox.UNSUBSCRIBE_SALT, compress=False)
        assert outbox.unsubscribe_token_verify(token=token) == customer_id


def test_mime_bytes_parse_back_to_the_rendered_email(varied_messages):
    for message in varied_messages:
        rendered = outbox.message_render(message=message)
        rendered.text += "\n.a line that starts with a dot\n" + "x" * 1200  # stuffing, long line
        data = outbox.message_mime(
            rendered=rendered, from_header=settings.DEFAULT_FROM_EMAIL, to=message.customer.email
        )
        assert data.endswith(b"\r\n.\r\n") and b"\r\n..a line" in data
        assert all(len(line) <= 998 for line in data.split(b"\r\n"))
        wire = data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")  # what the server stores
        parsed = email.message_from_bytes(wire, policy=email.policy.default)
        assert parsed.get_content_type() == "multipart/alternative"
        assert parsed["Subject"] == rendered.subject
        assert parsed["To"] == message.customer.email
        assert parsed["Message-ID"] == rendered.headers["Message-ID"]
        assert parsed["List-Unsubscribe"] == rendered.headers.get("List-Unsubscribe")
        # Text travels in canonical form (CRLF line ends), as with any mail client.
        assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == rendered.text
        assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == rendered.html
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_every_earlier_message_is_marked_sent_before_the_next_can_be_accepted(
    smtp_settings, smtp_sink, launch_with_sku
):
    """The pipelined sent mark keeps the guarantee: at most one accepted message unmarked.

    The server looks in the database (its own connection, so only committed rows count)
    each time it receives a message body: everything it accepted before must be `sent`.
    """
    launch, sku = launch_with_sku
    allocated_messages(launch=launch, sku=sku, n=40)
    dsn = connection.get_connection_params()
    seen: list[tuple[int, int]] = []
    with psycopg.connect(**{k: v for k, v in dsn.items() if k != "cursor_factory"}, autocommit=True) as db:
        handle_data = smtp_sink.handle_DATA

        async def checking_handle_DATA(server, session, envelope):
            sent = db.execute("SELECT count(*) FROM customers_message WHERE status = 'sent'").fetchone()[0]
            seen.append((smtp_sink.count(), sent))
            return await handle_data(server, session, envelope)

        smtp_sink.handle_DATA = checking_handle_DATA
        assert outbox.outbox_send_batch(limit=100).sent == 40
    assert len(seen) == 40
    assert all(sent == accepted for accepted, sent in seen), seen
    assert Message.objects.filter(status=Message.Status.SENT).count() == 40


def test_a_template_that_filters_a_recipient_field_is_refused_not_sent_wrong(settings, launch_with_sku):
    launch, sku = launch_with_sku
    (message,) = allocated_messages(launch=launch, sku=sku, n=1)
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "emails/allocated.txt": "Hello {{ customer.name|upper }}",
                            "emails/allocated.html": "<p>Hello {{ customer.name }}</p>",
                        },
                    )
                ]
            },
        }
    ]
    with pytest.raises(ValueError, match="went through a filter"):
        outbox.message_render(message=message)
