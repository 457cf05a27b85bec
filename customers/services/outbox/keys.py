"""Dedupe keys: one event, one key, one message. Their format is written here only.

The outbox's unique key is how it recognises an event it has already been told about,
so a key must name the event, not just the order: an order that waits and is later
served is two events (received, then allocated) and two emails.
"""

from customers.models import Message

# Fixed for good: a changed prefix would let an event already told be told again.
_ORDER_PREFIX = {
    Message.Kind.ORDER_RECEIVED: "received",
    Message.Kind.ALLOCATED: "allocated",
    Message.Kind.READY_TO_COLLECT: "ready_to_collect",
    Message.Kind.COLLECTION_EXPIRED: "collection_expired",
    Message.Kind.ORDER_CANCELLED: "cancelled",
}


def order_message_key(*, kind: str, reference: str) -> str:
    """The key of an event in an order's life (received, allocated, ...)."""
    return f"{_ORDER_PREFIX[Message.Kind(kind)]}:{reference}"


def resend_message_key(*, original_id: int, token: str) -> str:
    """A copy of a message that staff asked for. The token comes from the form that asked,
    so a double click makes one copy, and asking again from a fresh form makes another."""
    return f"resend:{original_id}:{token}"


def campaign_message_key(*, kind: str, launch_id: int, customer_id: int) -> str:
    """A campaign tells each customer of a launch once per kind, whichever audience reached them."""
    return f"{kind}:{launch_id}:{customer_id}"


def order_message_key_sql(*, kind: str, reference: str) -> str:
    """order_message_key as SQL over two columns, for statements that write many rows."""
    whens = " ".join(f"WHEN '{k.value}' THEN '{prefix}:'" for k, prefix in _ORDER_PREFIX.items())
    return f"(CASE {kind} {whens} END || {reference})"


def stock_notice_key(*, window_id: int, customer_id: int) -> str:
    """A stock notice tells a customer once per freed batch (its claim window)."""
    return f"stock_notice:{window_id}:{customer_id}"


def stock_notice_key_sql(*, window_id: str, customer_id: str) -> str:
    """stock_notice_key as SQL over two columns."""
    return f"('stock_notice:' || {window_id} || ':' || {customer_id})"
