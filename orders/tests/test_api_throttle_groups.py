"""The per-key throttle adds to the shared count in groups, and exactly for small limits."""

import uuid

import pytest
from django.core.cache import cache

from orders.api import throttles

pytestmark = pytest.mark.services


def test_one_process_counts_every_request_while_sharing_in_groups():
    key = f"throttle-test:{uuid.uuid4()}"
    places = [throttles._count_grouped(key, 5, 1000) for _ in range(40)]
    assert places == list(range(1, 41))
    # Two groups of sixteen have reached the shared counter; eight are still local.
    assert cache.get(key) == 32


def test_small_limits_are_counted_exactly_in_the_shared_counter():
    key = f"throttle-test:{uuid.uuid4()}"
    for n in range(1, 6):
        assert throttles._count_grouped(key, 5, 10) == n
        assert cache.get(key) == n


def test_other_processes_requests_count_against_the_limit():
    key = f"throttle-test:{uuid.uuid4()}"
    throttles._count(key, 5, 100)  # another worker's group, already shared
    assert throttles._count_grouped(key, 5, 20) == 101
