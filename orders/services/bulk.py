"""Bulk admission: up to 1,000 partner orders in one request, one multi-row INSERT.

This is how one machine takes 13,000 orders a second: per item only Python work
(validation, a cache key, a reference), then per request a handful of statements however
many items there are: one cache get_many for eligibility (plus one query for the misses),
the shared admission lock per launch, ONE `INSERT ... SELECT FROM unnest(...) ON CONFLICT
DO NOTHING RETURNING`, one lookup of the rows that conflicted, one query of queue
positions per launch.

The rules are order_admit's, item by item, with the same codes and messages (a test
holds them equal): the database's unique (launch, customer, slot) decides "one order per
customer", never a check-then-insert; a row that conflicted is answered already_ordered
with the reference that is there. Inside one bulk the first item of a customer wins and
later ones are already_ordered with the first one's reference.

Items are sequenced in input order (first come within the bulk is first in the list),
but rows are inserted in (launch, customer) order with those sequence numbers, so two
bulks naming the same customers wait for each other in the same order and cannot
deadlock on the unique index; a deadlock with some other writer is retried.

On SQLite (the embedded demo), and for launches that allow a customer more than one
order (slots), items go through order_admit one by one instead.
"""

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from django.db import OperationalError, connection, transaction

from customers.services.registration import eligible_customer_ids
from orders.models import Order
from orders.services.admission import (
    AdmissionRefused,
    LaunchCatalogue,
    _take_admission_lock,
    allocation_nudge,
    launch_catalogue,
    order_admit,
    order_route,
    references_new,
    refused_already_ordered,
    refused_not_eligible,
    request_fingerprint,
)
from orders.services.positions import order_queue_position

MAX_BULK_ITEMS = 1000
_MAX_LENGTH = {"launch": 64, "customer": 16, "sku": 32, "store": 16}
_FULFILMENTS = (Order.Fulfilment.DELIVERY.value, Order.Fulfilment.COLLECT.value)
_DEADLOCK_RETRIES = 3


@dataclass(frozen=True)
class OrderRequest:
    """One validated order request, in the caller's codes (API.md's request body)."""

    launch: str
    customer: str
    sku: str
    fulfilment: str
    store: str | None


@dataclass(frozen=True)
class AdmittedOrder:
    """An admitted order as API.md's Order, without a model instance per row."""

    reference: str
    launch: str
    customer: str
    sku: str
    fulfilment: str
    store: str | None
    channel: str
    status: str
    queue_position: int | None
    created_at: object


@dataclass(frozen=True)
class BulkOutcome:
    index: int
    order: AdmittedOrder | None = None
    refusal: AdmissionRefused | None = None


@dataclass
class _Candidate:
    index: int
    request: OrderRequest
    cat: LaunchCatalogue
    sku_id: int
    store_id: int | None
    pool_id: int
    customer_id: int = 0
    reference: str = ""


def order_request_validate(data: dict) -> tuple[OrderRequest | None, dict[str, list[str]]]:
    """Check the shape of one order request body; (request, {}) or (None, field errors).

    Only types, lengths and choices: whether the launch, SKU, store and customer exist is
    the admission rules' business. Strings must be printable (no NUL: PostgreSQL refuses
    it in text, and it would otherwise surface as a server error).
    """
    launch, customer, sku = data.get("launch"), data.get("customer"), data.get("sku")
    fulfilment, store = data.get("fulfilment"), data.get("store")
    # The common case in one expression (a bulk validates a thousand of these); anything
    # unusual takes the long way below, which names each bad field.
    if (
        type(launch) is str
        and type(customer) is str
        and type(sku) is str
        and 0 < len(launch) <= 64
        and 0 < len(customer) <= 16
        and 0 < len(sku) <= 32
        and (launch + customer + sku).isprintable()
    ):
        if fulfilment == "delivery" and (
            store is None or (type(store) is str and 0 < len(store) <= 16 and store.isprintable())
        ):
            return OrderRequest(
                launch=launch, customer=customer, sku=sku, fulfilment=fulfilment, store=None
            ), {}
        if fulfilment == "collect" and type(store) is str and 0 < len(store) <= 16 and store.isprintable():
            return OrderRequest(
                launch=launch, customer=customer, sku=sku, fulfilment=fulfilment, store=store
            ), {}
    errors: dict[str, list[str]] = {}
    values: dict[str, str | None] = {}
    for name in ("launch", "customer", "sku", "fulfilment", "store"):
        value = data.get(name)
        if value is None:
            if name != "store":
                errors[name] = ["This field is required."]
            values[name] = None
            continue
        if not isinstance(value, str):
            errors[name] = ["Must be a string."]
            continue
        limit = _MAX_LENGTH.get(name, 16)
        if not 1 <= len(value) <= limit:
            errors[name] = [f"Must be 1 to {limit} characters."]
        elif not value.isprintable():
            errors[name] = ["Must contain only printable characters."]
        values[name] = value
    if "fulfilment" not in errors and values["fulfilment"] not in _FULFILMENTS:
        errors["fulfilment"] = ['Choose "delivery" or "collect".']
    if not errors and values["fulfilment"] == Order.Fulfilment.COLLECT and not values["store"]:
        errors["store"] = ["Name the store to collect from."]
    if errors:
        return None, errors
    return (
        OrderRequest(
            launch=values["launch"],
            customer=values["customer"],
            sku=values["sku"],
            fulfilment=values["fulfilment"],
            store=values["store"] if values["fulfilment"] == Order.Fulfilment.COLLECT else None,
        ),
        {},
    )


def _check(request: OrderRequest, *, partner_id: int | None, now) -> _Candidate | AdmissionRefused:
    """order_admit's rules up to eligibility (the same function), as a value not a raise."""
    cat = launch_catalogue(slug=request.launch)
    if cat is None:
        return AdmissionRefused("not_found", f"There is no launch called {request.launch!r}.")
    try:
        sku_id, store_id, pool_id = order_route(
            cat=cat,
            sku=request.sku,
            fulfilment=request.fulfilment,
            store=request.store,
            partner_id=partner_id,
            now=now,
        )
    except AdmissionRefused as refused:
        return refused
    return _Candidate(0, request, cat, sku_id, store_id, pool_id)


def _admitted(c: _Candidate, *, reference: str, channel: str, position: int | None, now) -> AdmittedOrder:
    r = c.request
    return AdmittedOrder(
        reference=reference,
        launch=r.launch,
        customer=r.customer,
        sku=r.sku,
        fulfilment=r.fulfilment,
        store=r.store,
        channel=channel,
        status=Order.Status.QUEUED,
        queue_position=position,
        created_at=now,
    )


def orders_admit_bulk(*, items: list, channel: str, partner_id: int | None, now=None) -> list[BulkOutcome]:
    """Admit up to MAX_BULK_ITEMS orders; one outcome per item, in input order.

    Each item is a decoded JSON value (API.md's order request body). Refusals carry
    order_admit's codes; an item that is not an object is `invalid_json`.
    """
    from django.utils import timezone

    now = now or timezone.now()
    outcomes: list[BulkOutcome | None] = [None] * len(items)
    candidates: list[_Candidate] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            outcomes[index] = BulkOutcome(
                index, refusal=AdmissionRefused("invalid_json", "Each order must be a JSON object.")
            )
            continue
        request, errors = order_request_validate(item)
        if request is None:
            outcomes[index] = BulkOutcome(
                index,
                refusal=AdmissionRefused(
                    "validation_error", "Some fields are missing or invalid.", details=errors
                ),
            )
            continue
        checked = _check(request, partner_id=partner_id, now=now)
        if isinstance(checked, AdmissionRefused):
            outcomes[index] = BulkOutcome(index, refusal=checked)
            continue
        checked.index = index
        candidates.append(checked)

    # Eligibility, one cache round trip (and at most one query) per launch.
    by_launch: dict[int, list[_Candidate]] = defaultdict(list)
    for c in candidates:
        by_launch[c.cat.id].append(c)
    eligible: list[_Candidate] = []
    for launch_id, group in by_launch.items():
        ids = eligible_customer_ids(launch_id=launch_id, account_numbers=(c.request.customer for c in group))
        for c in group:
            customer_id = ids.get(c.request.customer)
            if customer_id is None:
                outcomes[c.index] = BulkOutcome(c.index, refusal=refused_not_eligible())
            else:
                c.customer_id = customer_id
                eligible.append(c)

    # Inside one bulk the first item of a customer wins; later ones follow its fate.
    first: dict[tuple[int, int], _Candidate] = {}
    followers: list[tuple[_Candidate, _Candidate]] = []
    for c in eligible:
        leader = first.setdefault((c.cat.id, c.customer_id), c)
        if leader is not c:
            followers.append((c, leader))
    leaders = list(first.values())

    one_slot = [c for c in leaders if c.cat.per_customer_limit == 1]
    one_by_one = [c for c in leaders if c.cat.per_customer_limit != 1]
    if connection.vendor != "postgresql":
        one_by_one, one_slot = one_by_one + one_slot, []
    retry: list[_Candidate] = []
    if one_slot:
        retry = _insert_many(one_slot, outcomes=outcomes, channel=channel, partner_id=partner_id, now=now)
    for c in sorted(one_by_one + retry, key=lambda c: c.index):
        outcomes[c.index] = _admit_one(c, channel=channel, partner_id=partner_id, now=now)

    for c, leader in followers:
        led = outcomes[leader.index]
        if led is not None and led.order is not None:
            reference = led.order.reference
        elif led is not None and led.refusal is not None and led.refusal.code == "already_ordered":
            reference = led.refusal.details.get("reference")
        else:
            reference = None
        outcomes[c.index] = BulkOutcome(c.index, refusal=refused_already_ordered(reference))
    return outcomes  # type: ignore[return-value]  # every slot is filled above


def _admit_one(c: _Candidate, *, channel: str, partner_id: int | None, now) -> BulkOutcome:
    r = c.request
    try:
        admission = order_admit(
            launch=r.launch,
            customer=r.customer,
            sku=r.sku,
            fulfilment=r.fulfilment,
            store=r.store,
            channel=channel,
            partner_id=partner_id,
            now=now,
        )
    except AdmissionRefused as refused:
        return BulkOutcome(c.index, refusal=refused)
    order = admission.order
    position = order_queue_position(order=order).position
    return BulkOutcome(
        c.index, order=_admitted(c, reference=order.reference, channel=channel, position=position, now=now)
    )


_INSERT = """
INSERT INTO {table} (sequence, reference, launch_id, customer_id, slot, sku_id, channel,
                     fulfilment, store_id, pool_id, partner_id, status, idempotency_scope,
                     request_fingerprint, created_at)
SELECT t.sequence, t.reference, t.launch_id, t.customer_id, 1, t.sku_id, %(channel)s,
       t.fulfilment, t.store_id, t.pool_id, %(partner)s, 'queued', '', t.fingerprint, %(now)s
FROM unnest(%(sequence)s::bigint[], %(reference)s::varchar[], %(launch)s::bigint[],
            %(customer)s::bigint[], %(sku)s::bigint[], %(fulfilment)s::varchar[],
            %(store)s::bigint[], %(pool)s::bigint[], %(fingerprint)s::varchar[])
     WITH ORDINALITY AS t(sequence, reference, launch_id, customer_id, sku_id, fulfilment,
                          store_id, pool_id, fingerprint, ord)
ORDER BY t.ord
ON CONFLICT DO NOTHING
RETURNING sequence, reference
"""

_NEXT_SEQUENCES = "SELECT nextval(pg_get_serial_sequence('{table}', 'sequence')) FROM generate_series(1, %s)"

# Queue positions of new orders, as orders.services.positions computes them for one
# (waiting in the pool's waitlist + 1 + queued before it in the pool), for many at once:
# one pass over the launch's queued orders, which the allocator keeps short.
_POSITIONS = """
SELECT q.sequence, COALESCE(ps.waiting, 0) + q.rank
FROM (
  SELECT o.sequence, o.sku_id, o.pool_id,
         row_number() OVER (PARTITION BY o.sku_id, o.pool_id ORDER BY o.sequence) AS rank
  FROM {table} o
  WHERE o.launch_id = %(launch)s AND o.status = 'queued' AND o.sequence <= %(last)s
) q
LEFT JOIN orders_poolstate ps
  ON ps.launch_id = %(launch)s AND ps.sku_id = q.sku_id AND ps.pool_id = q.pool_id
WHERE q.sequence = ANY(%(mine)s::bigint[])
"""


def _insert_many(
    candidates: list[_Candidate], *, outcomes: list, channel: str, partner_id: int | None, now
) -> list[_Candidate]:
    """Insert the rows of a bulk in one statement; fill their outcomes.

    Returns the candidates whose row neither went in nor met an order of the customer
    (a clash on a random reference): the caller admits those one by one.
    """
    candidates = sorted(candidates, key=lambda c: (c.cat.id, c.customer_id))
    for attempt in range(_DEADLOCK_RETRIES):
        for c, reference in zip(candidates, references_new(len(candidates)), strict=True):
            c.reference = reference
        try:
            return _insert_many_once(
                candidates, outcomes=outcomes, channel=channel, partner_id=partner_id, now=now
            )
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != "40P01" or attempt == _DEADLOCK_RETRIES - 1:
                raise
    return []  # unreachable: the loop returns or raises


def _insert_many_once(
    candidates: list[_Candidate], *, outcomes: list, channel: str, partner_id: int | None, now
) -> list[_Candidate]:
    table = Order._meta.db_table
    launch_ids = sorted({c.cat.id for c in candidates})
    params = {
        "channel": channel,
        "partner": partner_id,
        "now": now,
        "reference": [c.reference for c in candidates],
        "launch": [c.cat.id for c in candidates],
        "customer": [c.customer_id for c in candidates],
        "sku": [c.sku_id for c in candidates],
        "fulfilment": [c.request.fulfilment for c in candidates],
        "store": [c.store_id for c in candidates],
        "pool": [c.pool_id for c in candidates],
        "fingerprint": [
            request_fingerprint(
                launch=c.request.launch,
                customer=c.request.customer,
                sku=c.request.sku,
                fulfilment=c.request.fulfilment,
                store=c.request.store,
            )
            for c in candidates
        ],
    }
    with transaction.atomic():
        for launch_id in launch_ids:
            _take_admission_lock(launch_id)
        with connection.cursor() as cursor:
            # Sequence numbers in input order, taken under the lock like an insert's own.
            cursor.execute(_NEXT_SEQUENCES.format(table=table), [len(candidates)])
            numbers = sorted(n for (n,) in cursor.fetchall())
            by_input = sorted(range(len(candidates)), key=lambda i: candidates[i].index)
            sequence = [0] * len(candidates)
            for i, n in zip(by_input, numbers, strict=True):
                sequence[i] = n
            params["sequence"] = sequence
            cursor.execute(_INSERT.format(table=table), params)
            sequences = dict((reference, sequence) for sequence, reference in cursor.fetchall())
        inserted = [c for c in candidates if c.reference in sequences]
        missing = [c for c in candidates if c.reference not in sequences]
        existing: dict[tuple[int, int], str] = {}
        if missing:
            # The customer's order committed before ours (another request or channel); we
            # waited for it on the unique index, so it is visible to this statement.
            rows = Order.objects.filter(
                launch_id__in={c.cat.id for c in missing},
                customer_id__in={c.customer_id for c in missing},
                slot=1,
            ).values_list("launch_id", "customer_id", "reference")
            existing = {(launch_id, customer_id): ref for launch_id, customer_id, ref in rows}
        positions: dict[int, int] = {}
        for launch_id in launch_ids:
            mine = [sequences[c.reference] for c in inserted if c.cat.id == launch_id]
            if not mine:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    _POSITIONS.format(table=table), {"launch": launch_id, "last": max(mine), "mine": mine}
                )
                positions.update(cursor.fetchall())
            transaction.on_commit(partial(allocation_nudge, launch_id=launch_id))
    for c in inserted:
        position = positions.get(sequences[c.reference])
        outcomes[c.index] = BulkOutcome(
            c.index, order=_admitted(c, reference=c.reference, channel=channel, position=position, now=now)
        )
    retry = []
    for c in missing:
        reference = existing.get((c.cat.id, c.customer_id))
        if reference is None:
            retry.append(c)
        else:
            outcomes[c.index] = BulkOutcome(c.index, refusal=refused_already_ordered(reference))
    return retry
