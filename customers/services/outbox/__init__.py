"""The outbox: messages written with the event that causes them, sent exactly once.

A Message row is inserted in the same transaction as its event, with a unique dedupe key
(keys.py), so no event makes two messages and no committed event makes none. The row
carries what its email needs as it was at the event (facts.py), so sending never reads
another app's tables. Senders (Celery tasks, customers/tasks.py) drain the outbox in
batches (sender.py):

1. claim a batch (claim.py): pending rows, and rows whose sending lease expired, become
   `sending` with claimed_at = now, under FOR UPDATE SKIP LOCKED, so two senders never
   claim one row;
2. render each (render.py) and send it over one SMTP connection (smtp.py, mime.py),
   marking it `sent` in its own autocommit UPDATE right after the server accepted it;
3. a failed attempt goes back to `pending` with a backoff, or `failed` after
   OUTBOX_MAX_ATTEMPTS, keeping its last error.

A worker killed mid-batch leaves its batch `sending`. When the lease has run out the rows
are claimed again. None of them was sent, except at most the one whose SMTP transaction
was under way at the kill: that one may arrive twice, with the same Message-ID, so a
mail system can drop the copy. Nothing is ever lost.

This package's face: the names other modules use. Its modules each do one job.
"""

from customers.services.outbox.claim import outbox_claim, outbox_has_due, outbox_next_due
from customers.services.outbox.enqueue import (
    DRAIN_TASK,
    NUDGE_KEY,
    WAKE_KEY,
    OutboxMessage,
    messages_enqueue,
    order_events_enqueue,
    order_message,
    outbox_nudge,
    outbox_nudge_now,
    stock_notices_enqueue,
)
from customers.services.outbox.facts import OrderFacts
from customers.services.outbox.keys import campaign_message_key, order_message_key, stock_notice_key
from customers.services.outbox.mime import message_mime
from customers.services.outbox.notice_links import ClaimLink, claim_token_make, claim_token_read, claim_url
from customers.services.outbox.render import RenderCache, RenderedEmail, message_email, message_render
from customers.services.outbox.resend import NotResendable, message_resend
from customers.services.outbox.sender import (
    BatchResult,
    OutboxConnectionError,
    outbox_drain,
    outbox_send_batch,
)
from customers.services.outbox.unsubscribe import (
    UNSUBSCRIBE_SALT,
    customer_unsubscribe,
    unsubscribe_token_make,
    unsubscribe_token_verify,
    unsubscribe_url,
)

__all__ = [
    "DRAIN_TASK",
    "NUDGE_KEY",
    "UNSUBSCRIBE_SALT",
    "WAKE_KEY",
    "BatchResult",
    "ClaimLink",
    "NotResendable",
    "OrderFacts",
    "OutboxConnectionError",
    "OutboxMessage",
    "RenderCache",
    "RenderedEmail",
    "campaign_message_key",
    "claim_token_make",
    "claim_token_read",
    "claim_url",
    "customer_unsubscribe",
    "message_email",
    "message_mime",
    "message_render",
    "message_resend",
    "messages_enqueue",
    "order_events_enqueue",
    "order_message",
    "order_message_key",
    "outbox_claim",
    "outbox_drain",
    "outbox_has_due",
    "outbox_next_due",
    "outbox_nudge",
    "outbox_nudge_now",
    "outbox_send_batch",
    "stock_notice_key",
    "stock_notices_enqueue",
    "unsubscribe_token_make",
    "unsubscribe_token_verify",
    "unsubscribe_url",
]
