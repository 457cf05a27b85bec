"""Staff send an email again: a new outbox row linked to the original, with its own key
and Message-ID; the same request twice makes one copy; nothing still unsent is copied."""

import uuid

import pytest

from customers.models import Message
from customers.services.outbox import NotResendable, message_resend
from customers.tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.services]


def token() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def sent_mail():
    customer = CustomerFactory()
    return Message.objects.create(
        kind=Message.Kind.ALLOCATED,
        dedupe_key="allocated:ABC123",
        customer=customer,
        order_reference="ABC123",
        context={"sku": 1, "store": None, "fulfilment": "delivery", "collect_by": None, "position": None},
        status=Message.Status.SENT,
    )


def test_a_resend_is_a_new_pending_row_pointing_at_the_original(sent_mail):
    copy = message_resend(original=sent_mail, token=token())
    assert copy.pk != sent_mail.pk
    assert copy.resend_of_id == sent_mail.pk
    assert copy.status == Message.Status.PENDING
    assert copy.message_id != sent_mail.message_id
    assert copy.dedupe_key != sent_mail.dedupe_key
    assert (copy.kind, copy.customer_id, copy.order_reference, copy.context) == (
        sent_mail.kind,
        sent_mail.customer_id,
        sent_mail.order_reference,
        sent_mail.context,
    )
    sent_mail.refresh_from_db()
    assert sent_mail.status == Message.Status.SENT  # what happened to it stays true


def test_the_same_request_twice_queues_one_copy_a_new_request_another(sent_mail):
    asked = token()
    first = message_resend(original=sent_mail, token=asked)
    again = message_resend(original=sent_mail, token=asked)
    assert again.pk == first.pk
    message_resend(original=sent_mail, token=token())
    assert Message.objects.filter(resend_of=sent_mail).count() == 2


def test_a_copy_of_a_copy_points_at_the_real_original(sent_mail):
    copy = message_resend(original=sent_mail, token=token())
    Message.objects.filter(pk=copy.pk).update(status=Message.Status.SENT)
    copy.refresh_from_db()
    second = message_resend(original=copy, token=token())
    assert second.resend_of_id == sent_mail.pk


@pytest.mark.parametrize("status", [Message.Status.PENDING, Message.Status.SENDING])
def test_an_email_still_in_the_outbox_is_not_copied(sent_mail, status):
    Message.objects.filter(pk=sent_mail.pk).update(status=status)
    sent_mail.refresh_from_db()
    with pytest.raises(NotResendable):
        message_resend(original=sent_mail, token=token())
    assert Message.objects.count() == 1
