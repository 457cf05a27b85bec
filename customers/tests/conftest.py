"""A real SMTP server for the outbox tests (aiosmtpd in a thread, on a free port)."""

from __future__ import annotations

import email
import email.policy
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from customers.models import Message
from customers.services.outbox import OrderFacts, order_message_key
from customers.tests.factories import CustomerFactory
from inventory.tests.factories import online_pool, store_location
from orders.models import Order


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    rcpt: list[str]
    message: email.message.EmailMessage

    def __getitem__(self, header: str):
        return self.message[header]

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


@dataclass
class Sink:
    """What the SMTP server accepted, and knobs to make it refuse."""

    received: list[Received] = field(default_factory=list)
    refuse_until: float = 0.0  # monotonic time before which every DATA gets 451
    refused: int = 0
    reject_rcpt: set[str] = field(default_factory=set)  # answered 550 for ever
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject_rcpt:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if time.monotonic() < self.refuse_until:
                self.refused += 1
                return "451 4.3.0 Try again later"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.received.append(Received(rcpt=list(envelope.rcpt_tos), message=parsed))
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.05)
        return self.count() >= n


@pytest.fixture
def smtp_sink():
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


@pytest.fixture
def smtp_settings(settings, smtp_sink):
    """Send in this process over real SMTP to the sink."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    settings.EMAIL_SEND_RATE_PER_SECOND = 0
    return settings


_refs = itertools.count(1)


def order_facts(*, sku, store=None, position=None, collect_by=None) -> OrderFacts:
    """What an outbox row says about an order (the outbox names orders, it needs none)."""
    return OrderFacts(
        reference=f"LD{next(_refs):010d}",
        sku_id=sku.pk,
        fulfilment="collect" if store is not None else "delivery",
        store_id=store.pk if store is not None else None,
        collect_by=collect_by,
        position=position,
    )


def message_about(*, kind: str, customer, launch, facts: OrderFacts) -> Message:
    """An outbox row about an order, keyed as the services key the event."""
    return Message.objects.create(
        kind=kind,
        dedupe_key=order_message_key(kind=kind, reference=facts.reference),
        customer=customer,
        launch=launch,
        order_reference=facts.reference,
        context=facts.context(),
    )


def order_make(*, launch, customer, sku, status="queued", store=None, wait_number=None, **extra) -> Order:
    """An order row as the admission and the allocator leave it (for orders' own tests)."""
    pool = store_location(store) if store is not None else online_pool()
    return Order.objects.create(
        reference=f"LD{next(_refs):06d}{customer.pk % 100:02d}",
        launch=launch,
        customer=customer,
        sku=sku,
        channel=Order.Channel.ONLINE,
        fulfilment=Order.Fulfilment.COLLECT if store is not None else Order.Fulfilment.DELIVERY,
        store=store,
        pool=pool,
        status=status,
        wait_number=wait_number,
        **extra,
    )


def allocated_messages(*, launch, sku, n: int) -> list[Message]:
    """n customers and their `allocated` message, as the allocator writes them."""
    return [
        message_about(
            kind=Message.Kind.ALLOCATED, customer=CustomerFactory(), launch=launch, facts=order_facts(sku=sku)
        )
        for _ in range(n)
    ]
