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
(with the reference that is there when the caller may hear it). Inside one bulk the
first item of a customer wins and later ones are already_ordered.

Items are sequenced in input order (first come within the bulk is first in the list),
but rows are inserted in (launch, customer) order with those sequence numbers, so two
bulks naming the same customers wait for each other in the same order and cannot
deadlock on the unique index; a deadlock with some other writer is retried.

On SQLite (the embedded demo), and for launches that allow a customer more than one
order (slots), items go through order_admit one by one instead.

The engine, candidates_admit, takes candidates of any caller and channel: the bulk API's
thousand items of one partner, or the single requests that group commit
(orders.services.group_commit) gathers from many clients, each with its own channel,
partner and Idempotency-Key. Keys are settled in the same transaction: a key already
used answers a replay or a conflict without inserting, and a key that met a concurrent
request's row on the unique index is read back after the insert.
"""

import datetime
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from config.logcontext import log_context_restored
from customers.services.registration import eligible_customers
from orders.codes import ErrorCode
from orders.models import Order
from orders.selectors.orders import OrderSummary, order_summary
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
)
from orders.services.allocation import allocation_nudge
from orders.services.catalogue import LaunchCatalogue, launch_catalogue
from orders.services.fair_start import DRAW_KEPT_SQL, draw_closes_at, fair_draw_new
from orders.services.locks import admission_lock_shared

MAX_BULK_ITEMS = 1000
_DEADLOCK_RETRIES = 3


@dataclass(frozen=True)
class BulkOutcome:
    """The fate of the request at `index`: its order, or its own refusal."""

    index: int
    order: OrderSummary | None = None
    refusal: AdmissionRefused | None = None
    # The order was admitted by an earlier request with the same Idempotency-Key.
    replayed: bool = False


@dataclass
class Candidate:
    """One order request that passed the rules up to eligibility, ready to insert."""

    index: int
    request: OrderRequest
    cat: LaunchCatalogue
    sku_id: int
    store_id: int | None
    pool_id: int
    channel: str
    partner_id: int | None
    created_at: datetime.datetime
    customer_id: int = 0
    idempotency_scope: str = ""
    idempotency_key: str | None = None
    reference: str = ""
    # A candidate draw: the INSERT keeps it only if it runs before the draw closes.
    fair_draw: int | None = None
    # The log context of the request it came from, when another thread writes it (group
    # commit): its lines and tasks carry that request's id. None: the caller's own thread.
    log_fields: Mapping[str, str] | None = None


def candidate_check(
    request: OrderRequest,
    *,
    channel: str,
    partner_id: int | None,
    now: datetime.datetime,
    index: int = 0,
    cached_only: bool = False,
) -> Candidate | AdmissionRefused:
    """order_admit's rules up to eligibility (the same functions), as a value not a raise.

    With cached_only, from this process's memory or NotCached (see config.cache).
    """
    cat = launch_catalogue(slug=request.launch, cached_only=cached_only)
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
            cached_only=cached_only,
        )
    except AdmissionRefused as refused:
        return refused
    return Candidate(
        index=index,
        request=request,
        cat=cat,
        sku_id=sku_id,
        store_id=store_id,
        pool_id=pool_id,
        channel=channel,
        partner_id=partner_id,
        created_at=now,
        fair_draw=fair_draw_new(fair_start_seconds=cat.fair_start_seconds),
    )


def _admitted(c: Candidate, *, reference: str, position: int | None) -> OrderSummary:
    r = c.request
    return OrderSummary(
        reference=reference,
        launch=r.launch,
        customer=r.customer,
        sku=r.sku,
        fulfilment=r.fulfilment,
        store=r.store,
        channel=c.channel,
        status=Order.Status.QUEUED,
        queue_position=position,
        created_at=c.created_at,
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
    candidates: list[Candidate] = []
    for index, request in enumerate(requests):
        checked = candidate_check(request, channel=channel, partner_id=partner_id, now=now, index=index)
        if isinstance(checked, AdmissionRefused):
            outcomes[index] = BulkOutcome(index, refusal=checked)
        else:
            candidates.append(checked)
    for outcome in candidates_admit(candidates_eligible(candidates, outcomes=outcomes)):
        outcomes[outcome.index] = outcome
    return outcomes  # type: ignore[return-value]  # every slot is filled above


def candidates_eligible(
    candidates: list[Candidate], *, outcomes: list[BulkOutcome | None]
) -> list[Candidate]:
    """The candidates whose customer may order (customer_id set); the others' refusal
    goes in `outcomes`. One cache round trip (and at most one query) per launch."""
    by_launch: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_launch[c.cat.id].append(c)
    eligible: list[Candidate] = []
    for launch_id, group in by_launch.items():
        found = eligible_customers(launch_id=launch_id, account_numbers=(c.request.customer for c in group))
        for c in group:
            customer = found.get(c.request.customer)
            if customer is None:
                outcomes[c.index] = BulkOutcome(c.index, refusal=refused_not_eligible())
            elif not customer.proved_by(c.request.postcode):
                outcomes[c.index] = BulkOutcome(c.index, refusal=refused_not_eligible(failed_proof=True))
            else:
                c.customer_id = customer.customer_id
                eligible.append(c)
    return sorted(eligible, key=lambda c: c.index)


def candidates_admit(candidates: list[Candidate]) -> list[BulkOutcome]:
    """Admit eligible candidates (customer_id set), sequenced in the order of their index;
    one outcome each. Idempotency-Keys are replayed or refused as a conflict, and within
    the list the first candidate of a customer wins; later ones are already_ordered."""
    if len(candidates) == 1:
        # One order alone (an idle moment of group commit, a caller's own transaction):
        # order_admit writes it in one statement, lock, insert and position together.
        return [_admit_one(candidates[0])]
    outcomes: dict[int, BulkOutcome] = {}
    fresh = (
        _settle_keys(candidates, outcomes=outcomes)
        if any(c.idempotency_key for c in candidates)
        else candidates
    )
    first: dict[tuple[int, int], Candidate] = {}
    followers: list[tuple[Candidate, Candidate]] = []
    for c in fresh:
        leader = first.setdefault((c.cat.id, c.customer_id), c)
        if leader is not c:
            followers.append((c, leader))
    leaders = list(first.values())

    one_slot = [c for c in leaders if c.cat.per_customer_limit == 1]
    one_by_one = [c for c in leaders if c.cat.per_customer_limit != 1]
    if connection.vendor != "postgresql":
        one_by_one, one_slot = one_by_one + one_slot, []
    retry: list[Candidate] = []
    if one_slot:
        retry = _insert_many(one_slot, outcomes=outcomes)
    for c in sorted(one_by_one + retry, key=lambda c: c.index):
        outcomes[c.index] = _admit_one(c)

    for c, leader in followers:
        led = outcomes[leader.index]
        same_request = (
            c.idempotency_key is not None
            and (c.idempotency_scope, c.idempotency_key) == (leader.idempotency_scope, leader.idempotency_key)
            and c.request.fingerprint == leader.request.fingerprint
        )
        if same_request and led.order is not None:
            # The same request twice in one batch (a client retrying fast): one order.
            outcomes[c.index] = BulkOutcome(c.index, order=led.order, replayed=True)
            continue
        # A batch of group commit mixes callers: who may hear the reference is decided
        # for each follower, by the partner that placed the order.
        existing: tuple[str, int | None] | None = None
        if led.order is not None:
            existing = (led.order.reference, leader.partner_id)
        elif led.refusal is not None:
            existing = led.refusal.existing
        outcomes[c.index] = BulkOutcome(
            c.index,
            refusal=refused_already_ordered(
                reference=existing[0] if existing else None,
                owner_partner_id=existing[1] if existing else None,
                caller_partner_id=c.partner_id,
            ),
        )
    return [outcomes[c.index] for c in candidates]


def _nudge(*, launch_id: int, log_fields: Mapping[str, str] | None) -> None:
    with log_context_restored(log_fields):
        allocation_nudge(launch_id=launch_id)


def _settle_keys(candidates: list[Candidate], *, outcomes: dict[int, BulkOutcome]) -> list[Candidate]:
    """Answer the candidates whose Idempotency-Key is already used (a replay, or a conflict
    when the body differs); return the others. One query for the lot."""
    keys = {(c.idempotency_scope, c.idempotency_key) for c in candidates if c.idempotency_key is not None}
    existing = {
        (o.idempotency_scope, o.idempotency_key): o
        for o in Order.objects.filter(idempotency_key__in={k for _, k in keys}).select_related(
            "launch", "customer", "sku", "store"
        )
        if (o.idempotency_scope, o.idempotency_key) in keys
    }
    fresh = []
    for c in candidates:
        order = existing.get((c.idempotency_scope, c.idempotency_key)) if c.idempotency_key else None
        if order is None:
            fresh.append(c)
        else:
            outcomes[c.index] = _replay_or_conflict(c, order)
    return fresh


def _replay_or_conflict(c: Candidate, order: Order) -> BulkOutcome:
    if order.request_fingerprint != c.request.fingerprint:
        return BulkOutcome(
            c.index,
            refusal=AdmissionRefused(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                "This Idempotency-Key was already used with a different request body.",
                details={"reference": order.reference},
            ),
        )
    return BulkOutcome(c.index, order=order_summary(order), replayed=True)


def _admit_one(c: Candidate) -> BulkOutcome:
    with log_context_restored(c.log_fields):
        return _admit_one_here(c)


def _admit_one_here(c: Candidate) -> BulkOutcome:
    r = c.request
    try:
        admission = order_admit(
            launch=r.launch,
            customer=r.customer,
            sku=r.sku,
            fulfilment=r.fulfilment,
            store=r.store,
            postcode=r.postcode,
            channel=c.channel,
            partner_id=c.partner_id,
            idempotency_key=c.idempotency_key,
            idempotency_scope=c.idempotency_scope,
            now=c.created_at,
        )
    except AdmissionRefused as refused:
        return BulkOutcome(c.index, refusal=refused)
    if admission.replayed:
        return BulkOutcome(c.index, order=order_summary(admission.order), replayed=True)
    order = admission.order
    position = (
        admission.position if admission.position is not None else order_queue_position(order=order).position
    )
    return BulkOutcome(c.index, order=_admitted(c, reference=order.reference, position=position))


_INSERT = """
INSERT INTO {table} (sequence, reference, launch_id, customer_id, slot, sku_id, channel,
                     fulfilment, store_id, pool_id, partner_id, status, idempotency_scope,
                     idempotency_key, request_fingerprint, created_at, fair_draw)
SELECT t.sequence, t.reference, t.launch_id, t.customer_id, 1, t.sku_id, t.channel,
       t.fulfilment, t.store_id, t.pool_id, t.partner_id, 'queued', t.scope, t.key, t.fingerprint,
       t.created_at, {fair_draw}
FROM unnest(%(sequence)s::bigint[], %(reference)s::varchar[], %(launch)s::bigint[],
            %(customer)s::bigint[], %(sku)s::bigint[], %(channel)s::varchar[], %(fulfilment)s::varchar[],
            %(store)s::bigint[], %(pool)s::bigint[], %(partner)s::bigint[], %(scope)s::varchar[],
            %(key)s::varchar[], %(fingerprint)s::varchar[], %(created_at)s::timestamptz[],
            %(fair_draw)s::bigint[], %(draw_closes)s::timestamptz[])
     WITH ORDINALITY AS t(sequence, reference, launch_id, customer_id, sku_id, channel, fulfilment,
                          store_id, pool_id, partner_id, scope, key, fingerprint, created_at, fair_draw,
                          draw_closes, ord)
ORDER BY t.ord
ON CONFLICT DO NOTHING
RETURNING sequence, reference
"""
# Each row keeps its draw only if the database's clock, read as the row is written (the
# admission lock held since before the statement), is before its launch's draw closes.
_INSERT_SQL = _INSERT.replace("{fair_draw}", DRAW_KEPT_SQL.format(closes="t.draw_closes", draw="t.fair_draw"))

_NEXT_SEQUENCES = "SELECT nextval(pg_get_serial_sequence('{table}', 'sequence')) FROM generate_series(1, %s)"


def _insert_many(candidates: list[Candidate], *, outcomes: dict[int, BulkOutcome]) -> list[Candidate]:
    """Insert the rows of a bulk in one statement; fill their outcomes.

    Returns the candidates whose row neither went in nor met an order of the customer
    (a clash on a random reference): the caller admits those one by one.
    """
    candidates = sorted(candidates, key=lambda c: (c.cat.id, c.customer_id))
    for attempt in range(_DEADLOCK_RETRIES):
        for c, reference in zip(candidates, references_new(len(candidates)), strict=True):
            c.reference = reference
        try:
            return _insert_many_once(candidates, outcomes=outcomes)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != "40P01" or attempt == _DEADLOCK_RETRIES - 1:
                raise
    return []  # unreachable: the loop returns or raises


def _insert_many_once(candidates: list[Candidate], *, outcomes: dict[int, BulkOutcome]) -> list[Candidate]:
    table = Order._meta.db_table
    launch_ids = sorted({c.cat.id for c in candidates})
    params: dict[str, Any] = {
        "channel": [c.channel for c in candidates],
        "partner": [c.partner_id for c in candidates],
        "scope": [c.idempotency_scope for c in candidates],
        "key": [c.idempotency_key for c in candidates],
        "created_at": [c.created_at for c in candidates],
        "fair_draw": [c.fair_draw for c in candidates],
        "draw_closes": [
            draw_closes_at(opens_at=c.cat.opens_at, fair_start_seconds=c.cat.fair_start_seconds)
            for c in candidates
        ],
        "reference": [c.reference for c in candidates],
        "launch": [c.cat.id for c in candidates],
        "customer": [c.customer_id for c in candidates],
        "sku": [c.sku_id for c in candidates],
        "fulfilment": [c.request.fulfilment for c in candidates],
        "store": [c.store_id for c in candidates],
        "pool": [c.pool_id for c in candidates],
        "fingerprint": [c.request.fingerprint for c in candidates],
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
            cursor.execute(_INSERT_SQL.format(table=table), params)
            sequences = dict((reference, sequence) for sequence, reference in cursor.fetchall())
        inserted = [c for c in candidates if c.reference in sequences]
        missing = [c for c in candidates if c.reference not in sequences]
        if any(c.idempotency_key for c in missing):
            # A concurrent request with the same key won on the unique index: read it back.
            missing = _settle_keys(missing, outcomes=outcomes)
        existing: dict[tuple[int, int], tuple[str, int | None]] = {}
        if missing:
            # The customer's order committed before ours (another request or channel); we
            # waited for it on the unique index, so it is visible to this statement.
            rows = Order.objects.filter(
                launch_id__in={c.cat.id for c in missing},
                customer_id__in={c.customer_id for c in missing},
                slot=1,
            ).values_list("launch_id", "customer_id", "reference", "partner_id")
            existing = {(launch_id, customer_id): (ref, owner) for launch_id, customer_id, ref, owner in rows}
        positions: dict[int, int | None] = {}
        for launch_id in launch_ids:
            theirs = [c for c in inserted if c.cat.id == launch_id]
            if not theirs:
                continue
            positions.update(
                queued_positions(launch_id=launch_id, sequences=[sequences[c.reference] for c in theirs])
            )
            # One nudge per launch stands for all its orders here, as a coalesced nudge does
            # for single orders: it carries the request of the first of them (group commit).
            first = min(theirs, key=lambda c: c.index)
            transaction.on_commit(partial(_nudge, launch_id=launch_id, log_fields=first.log_fields))
    for c in inserted:
        position = positions.get(sequences[c.reference])
        outcomes[c.index] = BulkOutcome(c.index, order=_admitted(c, reference=c.reference, position=position))
    retry = []
    for c in missing:
        found = existing.get((c.cat.id, c.customer_id))
        if found is None:
            retry.append(c)
        else:
            outcomes[c.index] = BulkOutcome(
                c.index,
                refusal=refused_already_ordered(
                    reference=found[0], owner_partner_id=found[1], caller_partner_id=c.partner_id
                ),
            )
    return retry
