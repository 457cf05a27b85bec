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

import datetime
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from customers.services.registration import eligible_customer_ids
from orders.models import Order
from orders.selectors.orders import OrderSummary
from orders.selectors.positions import order_queue_position, queued_positions
from orders.services.admission import (
    AdmissionRefused,
    OrderRequest,
    order_admit,
    order_route,
    references_new,
    refused_already_ordered,
    refused_launch_not_found,
    refused_not_eligible,
    request_fingerprint,
)
from orders.services.allocation import allocation_nudge
from orders.services.catalogue import LaunchCatalogue, launch_catalogue
from orders.services.locks import admission_lock_shared

MAX_BULK_ITEMS = 1000
_DEADLOCK_RETRIES = 3


@dataclass(frozen=True)
class BulkOutcome:
    """The fate of the request at `index`: its order, or its own refusal."""

    index: int
    order: OrderSummary | None = None
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


def _check(
    request: OrderRequest, *, partner_id: int | None, now: datetime.datetime
) -> _Candidate | AdmissionRefused:
    """order_admit's rules up to eligibility (the same functions), as a value not a raise."""
    cat = launch_catalogue(slug=request.launch)
    if cat is None:
        return refused_launch_not_found(request.launch)
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


def _admitted(
    c: _Candidate, *, reference: str, channel: str, position: int | None, now: datetime.datetime
) -> OrderSummary:
    r = c.request
    return OrderSummary(
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


def orders_admit_bulk(
    *,
    requests: Sequence[OrderRequest],
    channel: str,
    partner_id: int | None,
    now: datetime.datetime | None = None,
) -> list[BulkOutcome]:
    """Admit up to MAX_BULK_ITEMS orders; one outcome per request, in input order.

    Refusals carry order_admit's codes and messages.
    """
    now = now or timezone.now()
    outcomes: list[BulkOutcome | None] = [None] * len(requests)
    candidates: list[_Candidate] = []
    for index, request in enumerate(requests):
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
        reference: str | None
        if led is not None and led.order is not None:
            reference = led.order.reference
        elif led is not None and led.refusal is not None and led.refusal.code == "already_ordered":
            reference = led.refusal.details.get("reference")
        else:
            reference = None
        outcomes[c.index] = BulkOutcome(c.index, refusal=refused_already_ordered(reference))
    return outcomes  # type: ignore[return-value]  # every slot is filled above


def _admit_one(c: _Candidate, *, channel: str, partner_id: int | None, now: datetime.datetime) -> BulkOutcome:
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
    position = (
        admission.position if admission.position is not None else order_queue_position(order=order).position
    )
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


def _insert_many(
    candidates: list[_Candidate],
    *,
    outcomes: list[BulkOutcome | None],
    channel: str,
    partner_id: int | None,
    now: datetime.datetime,
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
    candidates: list[_Candidate],
    *,
    outcomes: list[BulkOutcome | None],
    channel: str,
    partner_id: int | None,
    now: datetime.datetime,
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
            admission_lock_shared(launch_id=launch_id)
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
            positions.update(queued_positions(launch_id=launch_id, sequences=mine))
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
