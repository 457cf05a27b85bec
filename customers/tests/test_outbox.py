"""The outbox in process, over real SMTP: dedupe, rendering, claims, retries, failure."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from customers.models import Message
from customers.services import outbox
from customers.services.outbox import OrderFacts
from customers.tests.conftest import allocated_messages, order_facts
from customers.tests.factories import CustomerFactory, RegistrationFactory
from inventory.models import Delivery
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def test_same_dedupe_key_makes_one_message(launch_with_sku):
    launch, sku = launch_with_sku
    customer = CustomerFactory()
    facts = order_facts(sku=sku, position=4)
    for _ in range(3):
        outbox.messages_enqueue(
            messages=[
                outbox.order_message(
                    kind=Message.Kind.ORDER_RECEIVED,
                    customer_id=customer.pk,
                    launch_id=launch.pk,
                    order=facts,
                )
            ]
        )
    assert Message.objects.filter(dedupe_key=f"received:{facts.reference}").count() == 1


def test_an_order_that_waits_then_is_served_is_two_events_two_keys(launch_with_sku):
    launch, sku = launch_with_sku
    facts = order_facts(sku=sku)
    keys = {
        outbox.order_message_key(kind=kind, reference=facts.reference) for kind in outbox.keys._ORDER_PREFIX
    }
    assert len(keys) == len(outbox.keys._ORDER_PREFIX)


def test_message_is_part_of_its_event_transaction(launch_with_sku):
    launch, sku = launch_with_sku
    customer = CustomerFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.messages_enqueue(
            messages=[
                outbox.order_message(
                    kind=Message.Kind.ORDER_RECEIVED,
                    customer_id=customer.pk,
                    launch_id=launch.pk,
                    order=order_facts(sku=sku),
                )
            ]
        )
        raise RuntimeError("the event rolls back")
    assert not Message.objects.exists()


def test_batch_sends_each_message_once_with_stable_message_id(smtp_settings, smtp_sink, launch_with_sku):
    launch, sku = launch_with_sku
    messages = allocated_messages(launch=launch, sku=sku, n=5)
    result = outbox.outbox_send_batch(limit=10)
    assert result.sent == 5
    assert outbox.outbox_send_batch(limit=10).claimed == 0
    assert smtp_sink.count() == 5
    by_rcpt = {r.rcpt[0]: r for r in smtp_sink.received}
    for message in messages:
        message.refresh_from_db()
        assert message.status == Message.Status.SENT and message.sent_at and message.attempts == 1
        got = by_rcpt[message.customer.email]
        assert got.message_id == f"<{message.message_id}@launchday.example>"
        assert message.order_reference in got.text() and message.order_reference in got.html()
        assert "Your phone is reserved" in got.text()
        assert got["List-Unsubscribe"] is None


def test_every_kind_renders_reference_and_next_step(launch_with_sku):
    launch, sku = launch_with_sku
    store = StoreFactory(name="Oxford Street")
    customer = CustomerFactory()
    # 7th in the queue when the event was told (orders' campaign test checks that count).
    order = order_facts(
        sku=sku, store=store, position=7, collect_by=timezone.now() + datetime.timedelta(days=3)
    )
    Delivery.objects.create(
        reference="D-NEXT", launch=launch, expected_on=timezone.localdate() + datetime.timedelta(days=7)
    )
    for kind in set(Message.Kind.values) - Message.PARTNER_KINDS:  # partners' mail: test_webhook_notices
        message = about(kind, customer, launch, order)
        rendered = outbox.message_render(message=message)
        assert "What happens next" in rendered.text, kind
        assert "What happens next" in rendered.html, kind
        if kind not in (Message.Kind.BACK_IN_STOCK, Message.Kind.STOCK_NOTICE):  # about no order
            assert order.reference in rendered.text and order.reference in rendered.html, kind
    apology = outbox.message_render(message=about(Message.Kind.APOLOGY, customer, launch, order))
    assert "number 7 in the queue" in apology.text
    assert (timezone.localdate() + datetime.timedelta(days=7)).strftime("%-d %B") in apology.text
    assert (
        "Oxford Street"
        in outbox.message_render(message=about(Message.Kind.READY_TO_COLLECT, customer, launch, order)).text
    )


def about(kind: str, customer, launch, order: OrderFacts) -> Message:
    """An unsaved outbox row about `order` (rendering previews one without writing it)."""
    reference = order.reference if kind != Message.Kind.BACK_IN_STOCK else ""
    return Message(
        kind=kind,
        dedupe_key=kind,
        customer=customer,
        launch=launch,
        order_reference=reference,
        context=order.context() if reference else {},
    )


def test_smtp_refusal_retries_with_backoff_then_fails_keeping_last_error(
    smtp_settings, smtp_sink, launch_with_sku
):
    smtp_settings.OUTBOX_MAX_ATTEMPTS = 2
    smtp_settings.OUTBOX_RETRY_BASE_SECONDS = 0
    launch, sku = launch_with_sku
    good, bad = allocated_messages(launch=launch, sku=sku, n=2)
    smtp_sink.reject_rcpt.add(bad.customer.email)
    first = outbox.outbox_send_batch(limit=10)
    assert (first.sent, first.retried) == (1, 1)
    bad.refresh_from_db()
    assert bad.status == Message.Status.PENDING and "550" in bad.last_error
    second = outbox.outbox_send_batch(limit=10)
    assert second.failed == 1
    bad.refresh_from_db()
    assert bad.status == Message.Status.FAILED and bad.attempts == 2 and "No such mailbox" in bad.last_error
    assert smtp_sink.count() == 1


def test_backoff_holds_a_message_back_until_due(smtp_settings, smtp_sink, launch_with_sku):
    smtp_settings.OUTBOX_RETRY_BASE_SECONDS = 60
    launch, sku = launch_with_sku
    (message,) = allocated_messages(launch=launch, sku=sku, n=1)
    smtp_sink.refuse_until = float("inf")
    assert outbox.outbox_send_batch().retried == 1
    smtp_sink.refuse_until = 0
    assert outbox.outbox_send_batch().claimed == 0
    assert outbox.outbox_next_due() > timezone.now() + datetime.timedelta(seconds=50)
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox.outbox_send_batch().sent == 1


def test_unreachable_server_hands_the_batch_back_untouched(settings, launch_with_sku):
    from customers.tests.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    launch, sku = launch_with_sku
    allocated_messages(launch=launch, sku=sku, n=3)
    with pytest.raises(outbox.OutboxConnectionError):
        outbox.outbox_send_batch()
    assert set(Message.objects.values_list("status", "attempts")) == {(Message.Status.PENDING, 0)}


def test_expired_lease_is_claimed_again_live_lease_is_not(settings, launch_with_sku):
    launch, sku = launch_with_sku
    first, second = allocated_messages(launch=launch, sku=sku, n=2)
    now = timezone.now()
    Message.objects.filter(pk=first.pk).update(
        status=Message.Status.SENDING,
        claimed_at=now - datetime.timedelta(seconds=settings.OUTBOX_LEASE_SECONDS + 1),
    )
    Message.objects.filter(pk=second.pk).update(status=Message.Status.SENDING, claimed_at=now)
    assert outbox.outbox_claim(limit=10) == [first.pk]


def test_marketing_mail_to_an_unsubscribed_customer_is_suppressed_order_mail_goes(
    smtp_settings, smtp_sink, launch_with_sku
):
    launch, sku = launch_with_sku
    (order_mail,) = allocated_messages(launch=launch, sku=sku, n=1)
    customer = order_mail.customer
    RegistrationFactory(customer=customer, launch=launch, preferred_sku=sku)
    marketing = Message.objects.create(
        kind=Message.Kind.BACK_IN_STOCK, dedupe_key="bis", customer=customer, launch=launch
    )
    outbox.customer_unsubscribe(customer_id=customer.pk)
    outbox.outbox_send_batch()
    marketing.refresh_from_db()
    order_mail.refresh_from_db()
    assert marketing.status == Message.Status.SUPPRESSED
    assert order_mail.status == Message.Status.SENT
    assert smtp_sink.count() == 1


def test_marketing_mail_carries_a_signed_list_unsubscribe(smtp_settings, smtp_sink, launch_with_sku):
    launch, sku = launch_with_sku
    customer = CustomerFactory()
    RegistrationFactory(
        customer=customer, launch=launch, preferred_sku=sku, preferred_store=StoreFactory(name="Leeds")
    )
    Message.objects.create(
        kind=Message.Kind.BACK_IN_STOCK, dedupe_key="bis", customer=customer, launch=launch
    )
    outbox.outbox_send_batch()
    (got,) = smtp_sink.received
    header = str(got["List-Unsubscribe"]).strip()
    assert header.startswith("<http") and "/unsubscribe/" in header
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = header.strip("<>").rstrip("/").rsplit("/", 1)[1]
    assert outbox.unsubscribe_token_verify(token=token) == customer.pk
    assert "Leeds" in got.text()


def test_unsubscribe_token_refuses_tampering():
    token = outbox.unsubscribe_token_make(customer=CustomerFactory())
    assert outbox.unsubscribe_token_verify(token=token) is not None
    tampered = ("x" if token[0] != "x" else "y") + token[1:]
    assert outbox.unsubscribe_token_verify(token=tampered) is None
    assert outbox.unsubscribe_token_verify(token="") is None
    assert outbox.unsubscribe_token_verify(token=token + "a") is None


def test_rate_setting_paces_sending(smtp_settings, smtp_sink, launch_with_sku):
    import time

    smtp_settings.EMAIL_SEND_RATE_PER_SECOND = 20
    launch, sku = launch_with_sku
    allocated_messages(launch=launch, sku=sku, n=10)
    outbox.sender.pacer.next_at = 0.0
    started = time.monotonic()
    assert outbox.outbox_send_batch().sent == 10
    assert time.monotonic() - started >= 9 / 20 * 0.9
