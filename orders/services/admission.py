"""Admission: the hot path of launch day.

Admission validates, checks eligibility against the cache and appends one order row. It
never touches a stock row, so it has no hot row. The database decides "one order per
customer" (unique launch, customer, slot) and "one order per Idempotency-Key" (unique
scope, key); Python never checks-then-inserts. Every admission holds its launch's
admission lock shared (orders.services.locks), which is what lets the allocator trust
its watermark.
"""

import contextlib
import datetime
import functools
import hashlib
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.services.registration import eligible_customer, postcode_normal
from orders.codes import ErrorCode
from orders.models import Order
from orders.selectors.positions import QUEUED_POSITION_RETURNING, order_queue_position
from orders.services.allocation import allocation_nudge
from orders.services.catalogue import LaunchCatalogue, launch_catalogue, store_info
from orders.services.fair_start import DRAW_KEPT_SQL, draw_closes_at, fair_draw_kept, fair_draw_new
from orders.services.locks import ADMISSION_LOCK

_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
_REFERENCE_TABLE = bytes(ord(_REFERENCE_ALPHABET[i % 32]) for i in range(256))


class AdmissionRefused(Exception):
    """A request the launch cannot accept, with its API.md error code."""

    def __init__(self, code: ErrorCode, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        # A known customer named with a wrong postcode: counted against the caller's key.
        self.failed_proof = False
        # already_ordered: (reference, partner that placed it), whoever may be told it.
        self.existing: tuple[str, int | None] | None = None


@dataclass(frozen=True)
class OrderRequest:
    """One order request in the caller's codes (API.md's request body), already checked
    for shape by its entry point (orders.api.validation, the customer's order form)."""

    launch: str
    customer: str
    sku: str
    fulfilment: str
    store: str | None = None
    # The customer's postcode, the proof a partner gives; None where the caller proved the
    # customer itself (the order form's account + postcode check, staff at the counter).
    postcode: str | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        return request_fingerprint(
            launch=self.launch,
            customer=self.customer,
            sku=self.sku,
            fulfilment=self.fulfilment,
            store=self.store,
            postcode=self.postcode,
        )


@dataclass
class Admission:
    order: Order
    replayed: bool = False
    # The order's queue position as the admission read it (None for a replay: read it now).
    position: int | None = None


def request_fingerprint(
    *, launch: str, customer: str, sku: str, fulfilment: str, store: str | None, postcode: str | None = None
) -> str:
    """What a replay of the same Idempotency-Key must repeat: every field of the request
    (the postcode as compared, so "sw1a 1aa" repeats "SW1A 1AA")."""
    fields: list[str | None] = [launch, customer, sku, fulfilment, store if fulfilment == "collect" else None]
    if postcode is not None:
        fields.append(postcode_normal(postcode))
    return hashlib.sha256(orjson.dumps(fields)).hexdigest()


def references_new(count: int) -> list[str]:
    """`count` fresh, unguessable order references: LD + 10 of 32 letters.

    One read of the OS's random source for the lot: 256 is a multiple of 32, so mapping
    each byte onto the alphabet keeps every letter equally likely.
    """
    raw = secrets.token_bytes(10 * count).translate(_REFERENCE_TABLE).decode("ascii")
    return ["LD" + raw[i : i + 10] for i in range(0, 10 * count, 10)]


def order_route(
    *,
    cat: LaunchCatalogue,
    sku: str,
    fulfilment: str,
    store: str | None,
    partner_id: int | None,
    now: datetime.datetime,
    cached_only: bool = False,
) -> tuple[int, int | None, int]:
    """Check an order's window, SKU and fulfilment; return (sku_id, store_id, pool_id).

    The rules every channel shares, single or bulk; raises AdmissionRefused (and, with
    cached_only, NotCached when the store is not in this process's memory).
    """
    if not (cat.opens_at <= now < cat.closes_at):
        raise AdmissionRefused(
            ErrorCode.LAUNCH_NOT_OPEN,
            "The launch window is not open.",
            details={"opens_at": cat.opens_at.isoformat(), "closes_at": cat.closes_at.isoformat()},
        )
    sku_id = cat.sku_ids.get(sku)
    if sku_id is None:
        raise AdmissionRefused(
            ErrorCode.UNKNOWN_SKU,
            f"{sku!r} is not part of this launch.",
            details={"sku": sorted(cat.sku_ids)},
        )
    if fulfilment == Order.Fulfilment.COLLECT:
        info = store_info(code=store, cached_only=cached_only) if store else None
        if info is None:
            raise AdmissionRefused(
                ErrorCode.VALIDATION_ERROR,
                "Collect orders need a store.",
                details={
                    "store": ["Name an open store to collect from." if not store else f"No store {store!r}."]
                },
            )
        if partner_id is not None and info.partner_id != partner_id:
            raise AdmissionRefused(
                ErrorCode.PERMISSION_DENIED, "Your customers can collect only from your own stores."
            )
        return sku_id, info.id, info.location_id
    if fulfilment == Order.Fulfilment.DELIVERY:
        return sku_id, None, cat.online_pool_id
    raise AdmissionRefused(
        ErrorCode.VALIDATION_ERROR,
        "Fulfilment must be delivery or collect.",
        details={"fulfilment": ['Choose "delivery" or "collect".']},
    )


def refused_launch_not_found(slug: str) -> AdmissionRefused:
    return AdmissionRefused(ErrorCode.NOT_FOUND, f"There is no launch called {slug!r}.")


def refused_not_eligible(*, failed_proof: bool = False) -> AdmissionRefused:
    """One answer for an unknown customer, an unregistered one and a wrong postcode, so a
    caller learns nothing about which accounts exist."""
    refused = AdmissionRefused(
        ErrorCode.NOT_ELIGIBLE,
        "This customer is unknown, not registered for this launch's upgrade, or the postcode does not match.",
    )
    refused.failed_proof = failed_proof
    return refused


def refused_already_ordered(
    *, reference: str | None, owner_partner_id: int | None, caller_partner_id: int | None
) -> AdmissionRefused:
    """The customer's order exists. Its reference opens the customer's status page and
    collection, so it is told only to the partner that placed the order, or to the
    operator's own channels, where the customer has proved who they are."""
    told = caller_partner_id is None or owner_partner_id == caller_partner_id
    refused = AdmissionRefused(
        ErrorCode.ALREADY_ORDERED,
        "This customer already has an order in this launch.",
        details={"reference": reference} if told and reference else {},
    )
    if reference:
        refused.existing = (reference, owner_partner_id)
    return refused


def eligible_or_refused(
    *, launch_id: int, customer: str, postcode: str | None, cached_only: bool = False
) -> int:
    """The customer's id if eligible and proved by the postcode (when one is given), or
    raise not_eligible; a wrong postcode for a known customer is marked a failed proof."""
    eligible = eligible_customer(launch_id=launch_id, account_number=customer, cached_only=cached_only)
    if eligible is None:
        raise refused_not_eligible()
    if not eligible.proved_by(postcode):
        raise refused_not_eligible(failed_proof=True)
    return eligible.customer_id


def _replay(*, scope: str, key: str, fingerprint: str) -> Admission | None:
    existing = (
        Order.objects.filter(idempotency_scope=scope, idempotency_key=key)
        .select_related("launch", "customer", "sku", "store")
        .first()
    )
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise AdmissionRefused(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This Idempotency-Key was already used with a different request body.",
            details={"reference": existing.reference},
        )
    return Admission(order=existing, replayed=True)


def _insert_under_admission_lock(order: Order, *, cat: LaunchCatalogue) -> int | None:
    """Insert one order while holding the launch's admission lock shared.

    On PostgreSQL outside a transaction this is ONE statement (its own transaction, so
    the lock is taken before the sequence is drawn and released at its commit): one
    round trip instead of BEGIN, lock, INSERT, COMMIT. Inside a caller's transaction it
    runs in a savepoint so a unique-constraint refusal leaves that transaction usable.
    The order's fair_draw is a candidate: the statement keeps it only if the database's
    clock, read after the lock is held, is before the draw closes (fair_start), and
    order.fair_draw is set to what was written. Returns the order's queue position, read
    by the same statement.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            order.fair_draw = fair_draw_kept(
                draw=order.fair_draw,
                opens_at=cat.opens_at,
                fair_start_seconds=cat.fair_start_seconds,
                now=timezone.now(),
            )
            order.save(force_insert=True)
            return order_queue_position(order=order).position
    fields = [f for f in Order._meta.concrete_fields if not f.primary_key]
    # A concrete field always has a column (Django's `concrete` is `column is not None`).
    columns = cast("list[str]", [f.column for f in fields])
    values = [DRAW_KEPT_SQL.format(closes="%s", draw="%s") if c == "fair_draw" else "%s" for c in columns]
    # Table and column names come from the model, never from input. The SELECT's list is
    # evaluated for the one row admission_lock yields, so after the lock is granted.
    sql = (
        "WITH admission_lock AS (SELECT pg_advisory_xact_lock_shared(%s, %s)) "  # noqa: S608
        f"INSERT INTO {Order._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM admission_lock "
        f"RETURNING sequence, fair_draw, {QUEUED_POSITION_RETURNING}"
    )
    closes = draw_closes_at(opens_at=cat.opens_at, fair_start_seconds=cat.fair_start_seconds)
    params: list[Any] = [ADMISSION_LOCK, order.launch_id]
    for f in fields:
        if f.column == "fair_draw":
            params += [closes, order.fair_draw]
        else:
            params.append(f.get_db_prep_save(f.pre_save(order, add=True), connection))
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(sql, params)
        order.sequence, order.fair_draw, position = cursor.fetchone()
    order._state.adding = False
    order._state.db = "default"
    return position


def order_admit(
    *,
    launch: str,
    customer: str,
    sku: str,
    fulfilment: str,
    channel: str,
    store: str | None = None,
    postcode: str | None = None,
    partner_id: int | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    now: datetime.datetime | None = None,
) -> Admission:
    """Admit one upgrade order, or raise AdmissionRefused with an API.md error code.

    Arguments are the caller's codes (launch slug, account number, SKU code, store code)
    so every channel validates the same way. A postcode, when given, must be the
    customer's (a partner's proof). Safe to retry with the same
    idempotency_key: a replay returns the original order with replayed=True, whenever it
    comes (after the window closed too). `now` (default: Python's clock) is the order's
    created_at and the moment checked against the launch's window; whether the order is
    in a fair start's draw is decided by the database's clock at the insert
    (orders.services.fair_start), whatever `now` says.
    """
    cat = launch_catalogue(slug=launch)
    if cat is None:
        raise refused_launch_not_found(launch)
    fingerprint = request_fingerprint(
        launch=launch, customer=customer, sku=sku, fulfilment=fulfilment, store=store, postcode=postcode
    )
    if idempotency_key is not None:
        replay = _replay(scope=idempotency_scope, key=idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay
    now = now or timezone.now()
    sku_id, store_id, pool_id = order_route(
        cat=cat, sku=sku, fulfilment=fulfilment, store=store, partner_id=partner_id, now=now
    )
    customer_id = eligible_or_refused(launch_id=cat.id, customer=customer, postcode=postcode)
    # Whether the order is in the draw is the insert's to decide, by the database's clock.
    fair_draw = fair_draw_new(fair_start_seconds=cat.fair_start_seconds)

    for slot in range(1, cat.per_customer_limit + 1):
        order = Order(
            reference=references_new(1)[0],
            launch_id=cat.id,
            customer_id=customer_id,
            slot=slot,
            sku_id=sku_id,
            channel=channel,
            fulfilment=fulfilment,
            store_id=store_id,
            pool_id=pool_id,
            partner_id=partner_id,
            idempotency_scope=idempotency_scope,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            created_at=now,
            fair_draw=fair_draw,
        )
        try:
            position = _insert_under_admission_lock(order, cat=cat)
            transaction.on_commit(partial(allocation_nudge, launch_id=cat.id))
            return Admission(order=order, position=position)
        except IntegrityError:
            # Another request won a race: the same Idempotency-Key (replay or conflict), or
            # the customer's slot. Both rows are committed now, so reading them is safe.
            if idempotency_key is not None:
                replay = _replay(scope=idempotency_scope, key=idempotency_key, fingerprint=fingerprint)
                if replay is not None:
                    return replay
            if not Order.objects.filter(launch_id=cat.id, customer_id=customer_id, slot=slot).exists():
                raise  # not a race we understand: let it surface
    existing = (
        Order.objects.filter(launch_id=cat.id, customer_id=customer_id)
        .order_by("slot")
        .values_list("reference", "partner_id")
        .first()
    )
    raise refused_already_ordered(
        reference=existing[0] if existing else None,
        owner_partner_id=existing[1] if existing else None,
        caller_partner_id=partner_id,
    )
