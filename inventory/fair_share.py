"""Fair shares of a delivery: the largest remainder method, and the plan split built on it.

These are pure functions of their arguments (no database), so the property tests can
throw any demand and any delivery at them.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def fair_share(*, total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split `total` units in proportion to `weights` by the largest remainder method.

    Each key first gets the whole part of its exact quota total * w / W; the units left
    over go one each to the keys with the largest fractional remainders (ties: the key
    that comes first in `weights`, so the result is deterministic). The parts sum to
    `total`, none is negative, and each is within one unit of its exact quota. With no
    weight at all the units are split equally.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights must not be negative")
    keys = list(weights)
    if not keys:
        if total:
            raise ValueError("cannot share units among nobody")
        return {}
    weight_sum = sum(weights.values())
    effective = weights if weight_sum else dict.fromkeys(keys, 1)
    weight_sum = sum(effective.values())
    quotas = {k: Fraction(total * effective[k], weight_sum) for k in keys}
    parts = {k: int(quotas[k]) for k in keys}  # floor: quotas are not negative
    left = total - sum(parts.values())
    order = sorted(range(len(keys)), key=lambda i: (-(quotas[keys[i]] - parts[keys[i]]), i))
    for i in order[:left]:
        parts[keys[i]] += 1
    return parts


@dataclass(frozen=True)
class Demand:
    """What waits at one pool for one SKU: orders waiting first, then registrations."""

    waiting: int = 0
    registered: int = 0


def tiered_share(*, total: int, demand: Mapping[K, Demand]) -> dict[K, int]:
    """Waiting orders are served first, then registrations without an order.

    If the delivery does not cover every waiting order, it is split in proportion to the
    orders waiting. Otherwise every pool gets its waiting orders and the rest is split in
    proportion to registrations without an order (equally, if there are none).
    """
    waiting = {k: d.waiting for k, d in demand.items()}
    waiting_total = sum(waiting.values())
    if total <= waiting_total:
        return fair_share(total=total, weights=waiting)
    rest = fair_share(total=total - waiting_total, weights={k: d.registered for k, d in demand.items()})
    return {k: waiting[k] + rest[k] for k in demand}


def plan_split(
    *,
    total: int,
    demand: Mapping[K, Demand],
    stores: Sequence[K] = (),
    partner_stores: Sequence[K] = (),
    minimum_per_store: int = 0,
    partner_share_percent: int | None = None,
) -> dict[K, int]:
    """Suggest how one SKU's delivery is split between pools.

    `demand` has a key per pool (the online pool and every store). `stores` and
    `partner_stores` name which keys are stores and which of those belong to partners.

    - With `partner_share_percent`, partners' stores together get that share of the
      delivery (largest remainder between the two groups) and the other pools the rest;
      each group is then split by demand on its own.
    - With `minimum_per_store`, every store first gets the minimum (or, if the units do
      not stretch to that, an equal share of them), and demand is then counted net of it.

    Never more than delivered: the parts always sum to `total`.
    """
    keys = list(demand)
    if not keys:
        if total:
            raise ValueError("no pool to give units to")
        return {}
    partners = [k for k in keys if k in set(partner_stores)]
    if partner_share_percent is not None and partners and len(partners) < len(keys):
        others = [k for k in keys if k not in set(partners)]
        groups = fair_share(
            total=total, weights={"partners": partner_share_percent, "others": 100 - partner_share_percent}
        )
        result: dict[K, int] = {}
        for group_total, group_keys in ((groups["partners"], partners), (groups["others"], others)):
            result.update(
                plan_split(
                    total=group_total,
                    demand={k: demand[k] for k in group_keys},
                    stores=[k for k in stores if k in set(group_keys)],
                    minimum_per_store=minimum_per_store,
                )
            )
        return {k: result[k] for k in keys}

    store_keys = [k for k in keys if k in set(stores)]
    floor = dict.fromkeys(keys, 0)
    if minimum_per_store and store_keys:
        if minimum_per_store * len(store_keys) >= total:
            given = fair_share(total=total, weights=dict.fromkeys(store_keys, 1))
            return {k: given.get(k, 0) for k in keys}
        for k in store_keys:
            floor[k] = minimum_per_store
    remaining = total - sum(floor.values())
    net = {}
    for k in keys:
        waiting_net = max(0, demand[k].waiting - floor[k])
        covered_by_floor = max(0, floor[k] - demand[k].waiting)
        net[k] = Demand(waiting=waiting_net, registered=max(0, demand[k].registered - covered_by_floor))
    rest = tiered_share(total=remaining, demand=net)
    return {k: floor[k] + rest[k] for k in keys}
