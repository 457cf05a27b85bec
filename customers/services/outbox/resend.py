"""Sending an email again because staff asked: a new outbox row, never a reset of the old one.

The original keeps its status, attempts and Message-ID (what happened to it stays true);
the copy has its own dedupe key (keys.resend_message_key), its own Message-ID, and points
at the original through resend_of, so "sent exactly once per key" still holds.
"""

from __future__ import annotations

from django.db import transaction

from customers.models import Message
from customers.services.outbox.enqueue import OutboxMessage, messages_enqueue, outbox_nudge
from customers.services.outbox.keys import resend_message_key

# A message still in the outbox goes anyway: a copy beside it would arrive twice.
RESENDABLE = frozenset({Message.Status.SENT, Message.Status.FAILED})


class NotResendable(Exception):
    pass


@transaction.atomic
def message_resend(*, original: Message, token: str) -> Message:
    """Queue a copy of `original` (sent or failed) and ask a sender to drain.

    `token` names the request (the form that asked): the same token twice makes one copy.
    A copy of a copy repeats the first original, so every copy points at the real one.
    """
    if original.status not in RESENDABLE:
        raise NotResendable(f"This email is {original.get_status_display().lower()}: it is still to be sent.")
    if original.customer_id is None:
        raise NotResendable("Only a customer's email can be sent again from here.")
    source = original.resend_of if original.resend_of is not None else original
    key = resend_message_key(original_id=source.pk, token=token)
    messages_enqueue(
        messages=[
            OutboxMessage(
                kind=source.kind,
                dedupe_key=key,
                customer_id=source.customer_id,
                launch_id=source.launch_id,
                order_reference=source.order_reference,
                context=source.context,
            )
        ]
    )
    # The bulk INSERT leaves resend_of out; set it on the row the key names (new or not).
    Message.objects.filter(dedupe_key=key, resend_of__isnull=True).update(resend_of=source)
    outbox_nudge()
    return Message.objects.get(dedupe_key=key)
