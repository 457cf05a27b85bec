"""Admission: the hot path of launch day.

Admission validates, checks eligibility against the cache and appends one order row. It
never touches a stock row, so it has no hot row. The database decides "one order per
customer" (unique launch, customer, slot) and "one order per Idempotency-Key" (unique
scope, key); Python never checks-then-inserts.

Every admission holds a shared advisory lock on its launch for its short transaction.
The allocator takes the same lock exclusively for an instant to read a watermark: once it
holds it, every sequence number at or below the watermark belongs to a committed (or
rolled back) order, so the allocator never serves a later order while an earlier one is
still being written.
"""

import contextlib
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.services.registration import eligible_customer_id
from inventory.models import Launch
from inventory.selectors import location_online_pool
from orders.models import Order
from stores.models import Store

ADMISSION_LOCK = 7301
CATALOGUE_SECONDS = 5.0
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
_REFERENCE_TABLE = bytes(ord(_REFERENCE_ALPHABET[i % 32]) for i in range(256))


class AdmissionRefused(Exception):
    """A request the launch cannot accept. `code` is the API.md error code."""

    def __init__(self, code: str, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class LaunchCatalogue:
    """What admission needs to know about a launch, cached in process for a few seconds."""

    id: int
    slug: str
    opens_at: object
    closes_at: object
    per_customer_limit: int
    sku_ids: dict[str, int]
    online_pool_id: int
    collect_hold_days: int


@dataclass(frozen=True)
class StoreInfo:
    id: int
    code: str
    partner_id: int | None
    location_id: int


@dataclass
class Admission:
    order: Order
    replayed: bool = False
    notes: dict = field(default_factory=dict)


_catalogue: dict[str, tuple[float, LaunchCatalogue | None]] = {}
_stores: dict[str, tuple[float, StoreInfo | None]] = {}


def catalogue_clear() -> None:
    """Forget cached launches and stores (tests, and after head office edits a launch)."""
    _catalogue.clear()
    _stores.clear()


def launch_catalogue(*, slug: str) -> LaunchCatalogue | None:
    hit = _catalogue.get(slug)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    launch = Launch.objects.filter(slug=slug).prefetch_related("skus").first()
    value = None
    if launch is not None:
        value = LaunchCatalogue(
            id=launch.pk,
            slug=launch.slug,
            opens_at=launch.opens_at,
            closes_at=launch.closes_at,
            per_customer_limit=launch.per_customer_limit,
            sku_ids={sku.code: sku.pk for sku in launch.skus.all()},
            online_pool_id=location_online_pool().pk,
            collect_hold_days=launch.collect_hold_days,
        )
    _catalogue[slug] = (time.monotonic() + CATALOGUE_SECONDS, value)
    return value


def store_info(*, code: str) -> StoreInfo | None:
    hit = _stores.get(code)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    store = Store.objects.filter(code=code, is_active=True).select_related("location").first()
    value = None
    if store is not None:
        from inventory.selectors import location_for_store

        value = StoreInfo(
            id=store.pk,
            code=store.code,
            partner_id=store.partner_id,
            location_id=location_for_store(store=store).pk,
        )
    _stores[code] = (time.monotonic() + CATALOGUE_SECONDS, value)
    return value


def request_fingerprint(*, launch: str, customer: str, sku: str, fulfilment: str, store: str | None) -> str:
    body = orjson.dumps([launch, customer, sku, fulfilment, store if fulfilment == "collect" else None])
    return hashlib.sha256(body).hexdigest()


def references_new(count: int) -> list[str]:
    """`count` fresh, unguessable order references: LD + 10 of 32 letters.

    One read of the OS's random source for the lot: 256 is a multiple of 32, so mapping
    each byte onto the alphabet keeps every letter equally likely.
    """
    raw = secrets.token_bytes(10 * count).translate(_REFERENCE_TABLE).decode("ascii")
    return ["LD" + raw[i : i + 10] for i in range(0, 10 * count, 10)]


def new_reference() -> str:
    return references_new(1)[0]


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
            "idempotency_conflict",
            "This Idempotency-Key was already used with a different request body.",
            details={"reference": existing.reference},
        )
    return Admission(order=existing, replayed=True)


def admission_warm() -> int:
    """Load the catalogue and the in-process eligibility of every launch open or opening
    within a day, so a new web process answers its first order as fast as its last."""
    from customers.services.registration import eligibility_local_warm

    soon = timezone.now() + timedelta(days=1)
    launches = Launch.objects.filter(opens_at__lte=soon, closes_at__gt=timezone.now())
    for launch in launches:
        launch_catalogue(slug=launch.slug)
        eligibility_local_warm(launch_id=launch.pk)
    return len(launches)


def _take_admission_lock(launch_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [ADMISSION_LOCK, launch_id])


# A fresh order is queued, so its place is behind its pool's whole waitlist and the
# queued orders before it (as orders.services.positions computes it), read in the
# insert's own statement to save a round trip.
_QUEUED_POSITION = (
    "COALESCE((SELECT ps.waiting FROM orders_poolstate ps WHERE ps.launch_id = orders_order.launch_id "
    "AND ps.sku_id = orders_order.sku_id AND ps.pool_id = orders_order.pool_id), 0) + 1 + "
    "(SELECT count(*) FROM orders_order q WHERE q.launch_id = orders_order.launch_id "
    "AND q.status = 'queued' AND q.sku_id = orders_order.sku_id AND q.pool_id = orders_order.pool_id "
    "AND q.sequence < orders_order.sequence)"
)


def _insert_under_admission_lock(order: Order) -> None:
    """Insert one order while holding the launch's admission lock shared.

    On PostgreSQL outside a transaction this is ONE statement (its own transaction, so
    the lock is taken before the sequence is drawn and released at its commit): one
    round trip instead of BEGIN, lock, INSERT, COMMIT. Inside a caller's transaction it
    runs in a savepoint so a unique-constraint refusal leaves that transaction usable.
    """
    if connection.vendor != "postgresql":
        from orders.services.positions import order_queue_position

        with transaction.atomic():
            order.save(force_insert=True)
            order.admitted_position = order_queue_position(order=order).position
        return
    fields = [f for f in Order._meta.concrete_fields if not f.primary_key]
    # Table and column names come from the model, never from input.
    sql = (
        "WITH admission_lock AS (SELECT pg_advisory_xact_lock_shared(%s, %s)) "  # noqa: S608
        f"INSERT INTO {Order._meta.db_table} ({', '.join(f.column for f in fields)}) "
        f"SELECT {', '.join(['%s'] * len(fields))} FROM admission_lock "
        f"RETURNING sequence, {_QUEUED_POSITION}"
    )
    params = [ADMISSION_LOCK, order.launch_id] + [
        f.get_db_prep_save(f.pre_save(order, add=True), connection) for f in fields
    ]
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(sql, params)
        order.sequence, order.admitted_position = cursor.fetchone()
    order._state.adding = False
    order._state.db = "default"


def order_admit(
    *,
    launch: str,
    customer: str,
    sku: str,
    fulfilment: str,
    channel: str,
    store: str | None = None,
    partner_id: int | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    now=None,
) -> Admission:
    """Admit one upgrade order, or raise AdmissionRefused with an API.md error code.

    Arguments are the caller's codes (launch slug, account number, SKU code, store code)
    so every channel validates the same way. Safe to retry with the same
    idempotency_key: a replay returns the original order with replayed=True.
    """
    cat = launch_catalogue(slug=launch)
    if cat is None:
        raise AdmissionRefused("not_found", f"There is no launch called {launch!r}.")
    fingerprint = request_fingerprint(
        launch=launch, customer=customer, sku=sku, fulfilment=fulfilment, store=store
    )
    if idempotency_key is not None:
        replay = _replay(scope=idempotency_scope, key=idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay
    now = now or timezone.now()
    sku_id, store_id, pool_id = order_route(
        cat=cat, sku=sku, fulfilment=fulfilment, store=store, partner_id=partner_id, now=now
    )
    customer_id = eligible_customer_id(launch_id=cat.id, account_number=customer)
    if customer_id is None:
        raise refused_not_eligible()

    for slot in range(1, cat.per_customer_limit + 1):
        order = Order(
            reference=new_reference(),
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
        )
        try:
            _insert_under_admission_lock(order)
            transaction.on_commit(partial(allocation_nudge, launch_id=cat.id))
            return Admission(order=order)
        except IntegrityError:
            # Another request won a race: the same Idempotency-Key (replay or conflict), or
            # the customer's slot. Both rows are committed now, so reading them is safe.
            if idempotency_key is not None:
                replay = _replay(scope=idempotency_scope, key=idempotency_key, fingerprint=fingerprint)
                if replay is not None:
                    return replay
            if not Order.objects.filter(launch_id=cat.id, customer_id=customer_id, slot=slot).exists():
                raise  # not a race we understand: let it surface
    existing = Order.objects.filter(launch_id=cat.id, customer_id=customer_id).order_by("slot").first()
    raise refused_already_ordered(existing.reference if existing else None)


def order_route(
    *, cat: LaunchCatalogue, sku: str, fulfilment: str, store: str | None, partner_id: int | None, now
) -> tuple[int, int | None, int]:
    """Check an order's window, SKU and fulfilment; return (sku_id, store_id, pool_id).

    The rules every channel shares, single or bulk; raises AdmissionRefused.
    """
    if not (cat.opens_at <= now < cat.closes_at):
        raise AdmissionRefused(
            "launch_not_open",
            "The launch window is not open.",
            details={"opens_at": cat.opens_at.isoformat(), "closes_at": cat.closes_at.isoformat()},
        )
    sku_id = cat.sku_ids.get(sku)
    if sku_id is None:
        raise AdmissionRefused(
            "unknown_sku", f"{sku!r} is not part of this launch.", details={"sku": sorted(cat.sku_ids)}
        )
    if fulfilment == Order.Fulfilment.COLLECT:
        info = store_info(code=store) if store else None
        if info is None:
            raise AdmissionRefused(
                "validation_error",
                "Collect orders need a store.",
                details={
                    "store": ["Name an open store to collect from." if not store else f"No store {store!r}."]
                },
            )
        if partner_id is not None and info.partner_id != partner_id:
            raise AdmissionRefused(
                "permission_denied", "Your customers can collect only from your own stores."
            )
        return sku_id, info.id, info.location_id
    if fulfilment == Order.Fulfilment.DELIVERY:
        return sku_id, None, cat.online_pool_id
    raise AdmissionRefused(
        "validation_error",
        "Fulfilment must be delivery or collect.",
        details={"fulfilment": ['Choose "delivery" or "collect".']},
    )


def refused_not_eligible() -> AdmissionRefused:
    return AdmissionRefused(
        "not_eligible", "This customer is unknown or not registered for this launch's upgrade."
    )


def refused_already_ordered(reference: str | None) -> AdmissionRefused:
    return AdmissionRefused(
        "already_ordered",
        "This customer already has an order in this launch.",
        details={"reference": reference},
    )


_last_nudge: dict[int, float] = {}
NUDGE_INTERVAL = 0.2
ALLOCATOR_NUDGE_SECONDS = 1


def allocation_nudge(*, launch_id: int) -> None:
    """Ask for an allocator run soon. Coalesced: a burst of admissions makes one task.

    First within this process (at most one nudge per launch every NUDGE_INTERVAL, no
    network), then across processes through a short-lived flag in the shared cache. The
    beat safety net runs the allocator every second anyway, so a skipped or lost nudge
    only delays allocation, never loses an order.
    """
    from orders.tasks import allocate_launch

    if settings.CELERY_TASK_ALWAYS_EAGER:
        allocate_launch.delay(launch_id)
        return
    now = time.monotonic()
    if now - _last_nudge.get(launch_id, 0.0) < NUDGE_INTERVAL:
        return
    _last_nudge[launch_id] = now
    from django.core.cache import cache

    # The flag is not cleared when the run starts: it expires, so however fast orders
    # arrive the allocator runs about once a second per launch, in batches, instead
    # of back to back competing with admission for the cores.
    if cache.add(f"allocation-pending:{launch_id}", 1, timeout=ALLOCATOR_NUDGE_SECONDS):
        allocate_launch.delay(launch_id)
