"""Property tests of the allocation plan's arithmetic: any demand, any delivery."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.fair_share import Demand, fair_share, plan_split, tiered_share

weights_strategy = st.dictionaries(
    st.text(min_size=1, max_size=4), st.integers(0, 10_000), min_size=1, max_size=40
)
demand_strategy = st.dictionaries(
    st.integers(0, 600),
    st.builds(Demand, waiting=st.integers(0, 500), registered=st.integers(0, 2_000)),
    min_size=1,
    max_size=30,
)


@given(total=st.integers(0, 200_000), weights=weights_strategy)
def test_fair_share_sums_to_total_is_not_negative_and_within_one_unit_of_the_quota(total, weights):
    parts = fair_share(total=total, weights=weights)
    assert set(parts) == set(weights)
    assert sum(parts.values()) == total
    assert all(p >= 0 for p in parts.values())
    weight_sum = sum(weights.values()) or len(weights)
    for key, part in parts.items():
        quota = Fraction(total * (weights[key] if sum(weights.values()) else 1), weight_sum)
        assert abs(part - quota) < 1


@given(total=st.integers(0, 50_000), weights=weights_strategy)
def test_largest_remainder_gives_each_key_its_floor_or_ceiling_and_rounds_up_the_largest_remainders(
    total, weights
):
    parts = fair_share(total=total, weights=weights)
    if not sum(weights.values()):
        return
    weight_sum = sum(weights.values())
    quotas = {k: Fraction(total * w, weight_sum) for k, w in weights.items()}
    rounded_up = [k for k in parts if parts[k] > quotas[k]]
    kept_down = [k for k in parts if parts[k] < quotas[k]]
    # Nobody rounded down has a larger remainder than anybody rounded up.
    if rounded_up and kept_down:
        assert min(quotas[k] % 1 for k in rounded_up) >= max(quotas[k] % 1 for k in kept_down)


def test_fair_share_known_case():
    # Quotas 4.2857, 2.8571, 2.8571 of 10: floors 4, 2, 2, then the two largest remainders.
    assert fair_share(total=10, weights={"a": 3, "b": 2, "c": 2}) == {"a": 4, "b": 3, "c": 3}
    assert fair_share(total=5, weights={"a": 0, "b": 0}) == {"a": 3, "b": 2}


def test_fair_share_refuses_negative_input():
    with pytest.raises(ValueError):
        fair_share(total=-1, weights={"a": 1})
    with pytest.raises(ValueError):
        fair_share(total=1, weights={"a": -1})


@given(total=st.integers(0, 100_000), demand=demand_strategy)
def test_tiered_share_serves_waiting_orders_first(total, demand):
    parts = tiered_share(total=total, demand=demand)
    assert sum(parts.values()) == total
    assert all(p >= 0 for p in parts.values())
    waiting_total = sum(d.waiting for d in demand.values())
    if total >= waiting_total:
        assert all(parts[k] >= d.waiting for k, d in demand.items())
    else:
        for k, d in demand.items():
            assert abs(parts[k] - Fraction(total * d.waiting, waiting_total)) < 1


@given(
    total=st.integers(0, 100_000),
    demand=demand_strategy,
    minimum=st.integers(0, 20),
    share=st.one_of(st.none(), st.integers(0, 100)),
    data=st.data(),
)
def test_plan_split_never_more_than_delivered_and_honours_minimum_and_partner_share(
    total, demand, minimum, share, data
):
    keys = list(demand)
    stores = [k for k in keys if k != keys[0]]  # the first key plays the online pool
    partner_stores = data.draw(st.lists(st.sampled_from(stores), unique=True)) if stores else []
    parts = plan_split(
        total=total,
        demand=demand,
        stores=stores,
        partner_stores=partner_stores,
        minimum_per_store=minimum,
        partner_share_percent=share,
    )
    assert set(parts) == set(demand)
    assert sum(parts.values()) == total
    assert all(p >= 0 for p in parts.values())
    if share is not None and partner_stores:
        partner_units = sum(parts[k] for k in partner_stores)
        assert abs(partner_units - Fraction(total * share, 100)) < 1
    elif minimum and stores and minimum * len(stores) <= total:
        assert all(parts[k] >= minimum for k in stores)


def test_plan_split_example_online_and_two_stores():
    demand = {
        "ONLINE": Demand(waiting=60, registered=100),
        "S1": Demand(waiting=30),
        "S2": Demand(waiting=10),
    }
    assert plan_split(total=50, demand=demand, stores=["S1", "S2"]) == {"ONLINE": 30, "S1": 15, "S2": 5}
    # Enough for every waiting order: the rest follows registrations without an order.
    assert plan_split(total=150, demand=demand, stores=["S1", "S2"]) == {"ONLINE": 110, "S1": 30, "S2": 10}
    # Minimum of 8 per store, then the other 34 by waiting orders net of it (60 : 22 : 2).
    assert plan_split(total=50, demand=demand, stores=["S1", "S2"], minimum_per_store=8) == {
        "ONLINE": 24,
        "S1": 17,
        "S2": 9,
    }
