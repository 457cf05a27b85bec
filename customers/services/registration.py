"""Registration of interest and eligibility.

Admission checks eligibility against a per-launch cache (Redis in production) so the hot
path never joins customers and registrations. The database stays the truth: a miss falls
back to one indexed query and fills the cache; registering writes the cache after commit.
"""

from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from config.cache import shared_redis
from customers.models import Customer, UpgradeRegistration

UPGRADABLE = (Customer.ContractStatus.ACTIVE, Customer.ContractStatus.UPGRADE_DUE)
# Unknown or unregistered customers are remembered briefly, so a flood of bad account
# numbers costs a cache hit, not a query, yet a new registration shows within a minute.
NEGATIVE_SECONDS = 60


class RegistrationRefused(Exception):
    def __init__(self, message: str, *, field: str = "__all__"):
        super().__init__(message)
        self.field = field


def _eligibility_key(launch_id: int, account_number: str) -> str:
    return f"elig:{launch_id}:{account_number}"


def eligible_customer_id(*, launch_id: int, account_number: str) -> int | None:
    """The customer's id if registered for this launch and allowed to upgrade, else None."""
    key = _eligibility_key(launch_id, account_number)
    client = shared_redis()
    if client is not None:
        # Django stores ints as plain numbers, so a raw GET reads what cache.set wrote.
        raw = client.get(cache.make_key(key))
        cached = None if raw is None else int(raw)
    else:
        cached = cache.get(key)
    if cached is None:
        cached = (
            UpgradeRegistration.objects.filter(
                launch_id=launch_id,
                customer__account_number=account_number,
                customer__contract_status__in=UPGRADABLE,
            )
            .values_list("customer_id", flat=True)
            .first()
        ) or 0
        cache.set(key, cached, settings.ELIGIBILITY_CACHE_SECONDS if cached else NEGATIVE_SECONDS)
    return cached or None


def eligibility_cache_warm(*, launch, chunk: int = 5000) -> int:
    """Load every eligible customer of a launch into the cache before its window opens."""
    rows = UpgradeRegistration.objects.filter(
        launch=launch, customer__contract_status__in=UPGRADABLE
    ).values_list("customer__account_number", "customer_id")
    batch: dict[str, int] = {}
    count = 0
    for account_number, customer_id in rows.iterator(chunk_size=chunk):
        batch[_eligibility_key(launch.pk, account_number)] = customer_id
        if len(batch) >= chunk:
            cache.set_many(batch, settings.ELIGIBILITY_CACHE_SECONDS)
            count += len(batch)
            batch = {}
    if batch:
        cache.set_many(batch, settings.ELIGIBILITY_CACHE_SECONDS)
        count += len(batch)
    return count


def eligibility_forget(*, launch_id: int, account_number: str) -> None:
    cache.delete(_eligibility_key(launch_id, account_number))


def customer_verify(*, account_number: str, postcode: str) -> Customer | None:
    """The customer if the account number and postcode match (the second factor), else None."""
    normalised = "".join(postcode.split()).upper()
    customer = Customer.objects.filter(account_number=account_number.strip().upper()).first()
    if customer is None or "".join(customer.postcode.split()).upper() != normalised:
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
