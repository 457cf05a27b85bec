"""Registration of interest and eligibility.

Admission checks eligibility against a per-launch cache so the hot path never joins
customers and registrations. Two tiers:

1. In each process, the launch's registered, upgradable customers (account number ->
   customer id), loaded whole on first use, topped up with new registrations every few
   seconds and reloaded every few minutes. A hit costs no round trip at all: on two busy
   cores the bench measured the eligibility GET to Redis at a third of admission's time.
2. Behind it, the shared cache (Redis in production), warmed before the window opens,
   and the database: a miss in the process (an unknown customer, or one registered in
   the last seconds) asks these, so a new registration is never refused.

A customer suspended after a load stays eligible until the next reload
(ELIGIBILITY_RELOAD_SECONDS), as the shared cache's entries do until they expire.

Each tier holds, per account, the customer id and a keyed 32-bit digest of the customer's
postcode packed in one int: a partner's order proves the customer with the postcode (as
the order form does) without a query, and no cache holds a postcode.
"""

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from config.cache import NotCached, shared_redis
from customers.models import Customer, UpgradeRegistration

logger = logging.getLogger(__name__)

UPGRADABLE = (Customer.ContractStatus.ACTIVE, Customer.ContractStatus.UPGRADE_DUE)
# Unknown or unregistered customers are remembered briefly, so a flood of bad account
# numbers costs a cache hit, not a query, yet a new registration shows within a minute.
NEGATIVE_SECONDS = 60


class RegistrationRefused(Exception):
    def __init__(self, message: str, *, field: str = "__all__"):
        super().__init__(message)
        self.field = field


def _eligibility_key(launch_id: int, account_number: str) -> str:
    # "elig2": values are (customer id, postcode digest) packed; "elig" held bare ids. The
    # digest key's id is in the name, so entries digested under a replaced SECRET_KEY are
    # never read (they would refuse every partner order as a wrong postcode until expiry).
    return f"elig2:{_postcode_key(settings.SECRET_KEY)[1]}:{launch_id}:{account_number}"


@functools.cache
def _postcode_key(secret_key: str) -> tuple[bytes, str]:
    """(the key postcode digests are made with, a short public id of it)."""
    key = hashlib.sha256(f"postcode:{secret_key}".encode()).digest()
    return key, hashlib.sha256(key).hexdigest()[:8]


def postcode_normal(postcode: str) -> str:
    """A postcode as compared: without spaces, in capitals ("sw1a 1aa" is "SW1A1AA")."""
    return "".join(postcode.split()).upper()


def postcode_digest(postcode: str) -> int:
    """A keyed 32-bit digest of the normal postcode: enough to tell a wrong one (a guess
    matches one time in four billion, and failed guesses are throttled), useless for
    reading postcodes back out of a cache without the SECRET_KEY."""
    digest = hashlib.blake2b(
        postcode_normal(postcode).encode("utf-8", "surrogatepass"),
        digest_size=4,
        key=_postcode_key(settings.SECRET_KEY)[0],
    ).digest()
    return int.from_bytes(digest, "big")


class Eligible(NamedTuple):
    """A customer who may order in a launch, and what proves it is them."""

    customer_id: int
    postcode_digest: int

    def proved_by(self, postcode: str | None) -> bool:
        """None: the caller proved the customer another way (the order form, staff)."""
        return postcode is None or postcode_digest(postcode) == self.postcode_digest

    @classmethod
    def unpack(cls, packed: int) -> "Eligible":
        return cls(packed >> 32, packed & 0xFFFFFFFF)


def _packed(customer_id: int, postcode: str) -> int:
    return customer_id << 32 | postcode_digest(postcode)


@dataclass
class _LaunchEligibility:
    accounts: dict[str, int] = field(default_factory=dict)  # account number -> packed Eligible
    last_registration_id: int = 0
    loaded_at: float = 0.0
    refreshed_at: float = 0.0


_in_process: dict[int, _LaunchEligibility] = {}


def eligibility_local_clear() -> None:
    """Forget this process's eligibility tier (tests; a new database)."""
    _in_process.clear()


_refreshing = threading.Lock()


def _local_eligibility(launch_id: int, *, cached_only: bool = False) -> _LaunchEligibility | None:
    """This process's tier for a launch, loaded, topped up or reloaded when due.

    One thread refreshes at a time; meanwhile the others go on with the tier as it was,
    a few seconds old at most. With cached_only (an event loop, which must not query), a
    refresh that nobody has started raises NotCached so the caller can run it in a thread.
    """
    if not settings.ELIGIBILITY_IN_PROCESS:
        return None
    entry = _in_process.get(launch_id)
    if entry is not None and not _refresh_due(entry):
        return entry
    if entry is not None and _refreshing.locked():
        return entry
    if cached_only:
        raise NotCached
    with _refreshing:
        entry = _in_process.get(launch_id)
        now = time.monotonic()
        if entry is None or now - entry.loaded_at > settings.ELIGIBILITY_RELOAD_SECONDS:
            fresh = _LaunchEligibility(loaded_at=now, refreshed_at=now)
            _top_up(fresh, launch_id)
            _in_process[launch_id] = entry = fresh
        elif now - entry.refreshed_at > settings.ELIGIBILITY_REFRESH_SECONDS:
            _top_up(entry, launch_id)
            entry.refreshed_at = now
    return entry


def _refresh_due(entry: _LaunchEligibility) -> bool:
    now = time.monotonic()
    return (
        now - entry.loaded_at > settings.ELIGIBILITY_RELOAD_SECONDS
        or now - entry.refreshed_at > settings.ELIGIBILITY_REFRESH_SECONDS
    )


def eligibility_local_warm(*, launch_id: int) -> int:
    """Load this process's tier for a launch now (a web worker starting); returns its size."""
    entry = _local_eligibility(launch_id)
    return len(entry.accounts) if entry is not None else 0


def _top_up(entry: _LaunchEligibility, launch_id: int) -> None:
    """Add the registrations made since the entry last looked (all of them the first time)."""
    rows = (
        UpgradeRegistration.objects.filter(
            launch_id=launch_id, pk__gt=entry.last_registration_id, customer__contract_status__in=UPGRADABLE
        )
        .order_by("pk")
        .values_list("pk", "customer__account_number", "customer_id", "customer__postcode")
    )
    for pk, account_number, customer_id, postcode in rows.iterator(chunk_size=20000):
        entry.accounts[account_number] = _packed(customer_id, postcode)
        entry.last_registration_id = pk


def eligible_customer(*, launch_id: int, account_number: str, cached_only: bool = False) -> Eligible | None:
    """The customer if registered for this launch and allowed to upgrade, else None.

    With cached_only, from this process's tier or NotCached (an event loop's call: a
    customer not in memory needs the shared cache or the database, in a thread).
    """
    local = _local_eligibility(launch_id, cached_only=cached_only)
    if local is not None:
        packed = local.accounts.get(account_number)
        if packed is not None:
            return Eligible.unpack(packed)
    if cached_only:
        raise NotCached
    key = _eligibility_key(launch_id, account_number)
    cached = _shared_get_many([key]).get(key)
    if cached is None:
        row = (
            UpgradeRegistration.objects.filter(
                launch_id=launch_id,
                customer__account_number=account_number,
                customer__contract_status__in=UPGRADABLE,
            )
            .values_list("customer_id", "customer__postcode")
            .first()
        )
        cached = _packed(*row) if row else 0
        _shared_set_many({key: cached}, settings.ELIGIBILITY_CACHE_SECONDS if cached else NEGATIVE_SECONDS)
    return Eligible.unpack(cached) if cached else None


def eligible_customer_id(
    *, launch_id: int, account_number: str, postcode: str | None = None, cached_only: bool = False
) -> int | None:
    """The customer's id if eligible and (when given) the postcode is theirs, else None."""
    eligible = eligible_customer(launch_id=launch_id, account_number=account_number, cached_only=cached_only)
    return eligible.customer_id if eligible is not None and eligible.proved_by(postcode) else None


# The shared cache (Redis) is a helper, never a dependency: when it is away, eligibility
# is asked of the database and nothing is remembered until it is back.


def _shared_get_many(keys: list[str]) -> dict[str, int]:
    try:
        client = shared_redis()
        if client is not None:
            # A raw MGET: Django's get_many validates every key first, which cost more than
            # the round trip for a thousand of them. Ints are stored plain, as cache.set
            # wrote them.
            raw = client.mget([cache.make_key(key) for key in keys])
            return {key: int(value) for key, value in zip(keys, raw, strict=True) if value is not None}
        return cache.get_many(keys)
    except Exception:  # the shared cache is away: ask the database
        logger.warning("eligibility cache unavailable", exc_info=True)
        return {}


def _shared_set_many(values: dict[str, int], timeout: float) -> None:
    try:
        cache.set_many(values, timeout)
    except Exception:
        logger.warning("eligibility cache unavailable", exc_info=True)


def eligible_customers(*, launch_id: int, account_numbers: Iterable[str]) -> dict[str, Eligible]:
    """Account number -> Eligible for those eligible: eligible_customer for many.

    The same tiers in the same order, each asked once for the lot: the process's own,
    then one MGET of the shared cache, then one query for what is left, which fills the
    shared cache both ways.
    """
    wanted = set(account_numbers)
    found: dict[str, int] = {}  # packed
    local = _local_eligibility(launch_id)
    if local is not None:
        found = {n: local.accounts[n] for n in wanted if n in local.accounts}
        wanted -= found.keys()
    if not wanted:
        return {number: Eligible.unpack(packed) for number, packed in found.items()}
    keys = {_eligibility_key(launch_id, number): number for number in wanted}
    cached = _shared_get_many(list(keys))
    misses: list[str] = []
    for key, number in keys.items():
        value = cached.get(key)
        if value is None:
            misses.append(number)
        elif value:
            found[number] = value
    if misses:
        rows = {
            number: _packed(customer_id, postcode)
            for number, customer_id, postcode in UpgradeRegistration.objects.filter(
                launch_id=launch_id,
                customer__account_number__in=misses,
                customer__contract_status__in=UPGRADABLE,
            ).values_list("customer__account_number", "customer_id", "customer__postcode")
        }
        found.update(rows)
        hits = {_eligibility_key(launch_id, n): rows[n] for n in misses if n in rows}
        unknown = {_eligibility_key(launch_id, n): 0 for n in misses if n not in rows}
        if hits:
            _shared_set_many(hits, settings.ELIGIBILITY_CACHE_SECONDS)
        if unknown:
            _shared_set_many(unknown, NEGATIVE_SECONDS)
    return {number: Eligible.unpack(packed) for number, packed in found.items()}


def eligibility_cache_warm(*, launch, chunk: int = 5000) -> int:
    """Load every eligible customer of a launch into the cache before its window opens."""
    rows = UpgradeRegistration.objects.filter(
        launch=launch, customer__contract_status__in=UPGRADABLE
    ).values_list("customer__account_number", "customer_id", "customer__postcode")
    batch: dict[str, int] = {}
    count = 0
    for account_number, customer_id, postcode in rows.iterator(chunk_size=chunk):
        batch[_eligibility_key(launch.pk, account_number)] = _packed(customer_id, postcode)
        if len(batch) >= chunk:
            cache.set_many(batch, settings.ELIGIBILITY_CACHE_SECONDS)
            count += len(batch)
            batch = {}
    if batch:
        cache.set_many(batch, settings.ELIGIBILITY_CACHE_SECONDS)
        count += len(batch)
    return count


def eligibility_forget(*, launch_id: int, account_number: str) -> None:
    try:
        cache.delete(_eligibility_key(launch_id, account_number))
    except Exception:  # the shared cache is away: its entry expires by itself
        logger.warning("eligibility cache unavailable", exc_info=True)


def customer_verify(*, account_number: str, postcode: str) -> Customer | None:
    """The customer if the account number and postcode match (the second factor), else None."""
    customer = Customer.objects.filter(account_number=account_number.strip().upper()).first()
    if customer is None or postcode_normal(customer.postcode) != postcode_normal(postcode):
        return None
    return customer


@transaction.atomic
def registration_create(
    *, launch, customer: Customer, preferred_sku, preferred_store=None
) -> UpgradeRegistration:
    """Register a customer's interest in a launch (or update their preferences).

    Refuses customers whose contract does not allow an upgrade and SKUs outside the launch.
    """
    if customer.contract_status not in UPGRADABLE:
        raise RegistrationRefused("This account is not eligible for an upgrade.", field="account_number")
    if not launch.skus.filter(pk=preferred_sku.pk).exists():
        raise RegistrationRefused("That model is not part of this launch.", field="preferred_sku")
    registration, _ = UpgradeRegistration.objects.update_or_create(
        launch=launch,
        customer=customer,
        defaults={"preferred_sku": preferred_sku, "preferred_store": preferred_store},
    )
    transaction.on_commit(
        partial(eligibility_forget, launch_id=launch.pk, account_number=customer.account_number)
    )
    return registration
