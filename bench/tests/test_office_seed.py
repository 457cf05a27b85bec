"""The office phase's launch is seeded as the allocator would have left it: the fairness
audit finds nothing, the stack's allocator finds nothing to move, and `--phases office`
runs it alone."""

import pytest

from bench import office
from bench.run import parse_args
from orders.models import Order, PoolState
from orders.selectors.fairness import launch_fairness
from orders.services.allocation import launch_allocate
from stores.tests.factories import StoreFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]  # the seed runs VACUUM


def test_the_seeded_launch_is_fair_and_settled():
    for n in range(3):
        StoreFactory(code=f"OB{n}")
    seeded = office.seed(customers=500, orders=400)
    assert seeded.orders == 400 and seeded.registrations == 500
    # Each pool's first units by sequence hold them, the rest wait: both kinds exist.
    assert seeded.orders_by_status.keys() == {"allocated", "waitlisted"}
    launch = seeded.slug
    audit = launch_fairness(launch=Order.objects.filter(reference=seeded.reference).get().launch)
    assert {c.name: c.violations for c in audit.checks} == {
        "out_of_turn": 0,
        "during_draw": 0,
        "units": 0,
        "positions": 0,
    }
    assert audit.checks[0].looked_at == seeded.orders_by_status["allocated"]
    waiting = sum(PoolState.objects.filter(launch__slug=launch).values_list("waiting", flat=True))
    assert waiting == seeded.orders_by_status["waitlisted"]
    assert any(p.pool.startswith("OB") for p in audit.pools)  # collect orders at the stores too
    result = launch_allocate(launch_id=audit.launch.pk)
    assert (result.allocated, result.waitlisted) == (0, 0)
    # A second call finds the launch seeded and adds nothing.
    assert office.seed(customers=500, orders=400).orders == 400


def test_the_office_phase_runs_alone():
    assert parse_args(["--phases", "office", "--skip-others"]).phases == {"office"}
