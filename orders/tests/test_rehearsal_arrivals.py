"""simulate_launch's arrivals: a non-homogeneous Poisson process with the shape asked for.

Counts per window must be Poisson around the rate's integral (mean and variance), the spike
at opening must dwarf the trickle, and nobody arrives outside the run.
"""

import math
import random

from orders.rehearsal.arrivals import Shape, arrival_times

SHAPE = Shape(duration=60, opens_after=6, peak_rate=300, crowd=3000)


def counts(shape: Shape, seed: int, windows: list[tuple[float, float]]) -> list[int]:
    times = list(arrival_times(shape, rng=random.Random(seed)))
    return [sum(1 for t in times if a <= t < b) for a, b in windows]


def test_counts_per_window_are_poisson_around_the_rates_integral():
    windows = [(0, 6), (6, 7), (7, 9), (9, 15), (15, 30), (30, 60)]
    runs = [counts(SHAPE, seed, windows) for seed in range(200)]
    for i, (a, b) in enumerate(windows):
        expected = SHAPE.expected(a, b)
        sample = [run[i] for run in runs]
        mean = sum(sample) / len(sample)
        variance = sum((x - mean) ** 2 for x in sample) / (len(sample) - 1)
        # The mean of 200 Poisson counts is within 5 standard errors of the true mean...
        assert abs(mean - expected) < 5 * math.sqrt(expected / len(sample)) + 0.05, (a, b, mean, expected)
        # ...and a Poisson count's variance equals its mean (loosely: a sample variance).
        assert 0.6 * expected - 1 < variance < 1.5 * expected + 1, (a, b, variance, expected)


def test_the_spike_at_opening_dwarfs_the_pre_open_trickle():
    times = list(arrival_times(SHAPE, rng=random.Random(7)))
    before = sum(1 for t in times if 5 <= t < 6)
    after = sum(1 for t in times if 6 <= t < 7)
    assert after > 10 * max(before, 1)
    assert SHAPE.rate(6.0) / SHAPE.rate(5.9) > 40


def test_the_crowd_sets_the_spikes_length_and_nobody_arrives_outside_the_run():
    small = Shape(duration=60, opens_after=6, peak_rate=300, crowd=600)
    assert small.tau < SHAPE.tau
    assert abs(SHAPE.expected(6, 60) - 3000) < 0.02 * 3000
    times = list(arrival_times(SHAPE, rng=random.Random(3)))
    assert times == sorted(times)
    assert all(0 <= t < 60 for t in times)


def test_a_crowd_larger_than_the_run_can_hold_is_capped_so_the_tail_decays():
    huge = Shape(duration=20, opens_after=2, peak_rate=100, crowd=1_000_000)
    assert huge.tau == (20 - 2) / 3
    assert huge.rate(19.9) < 0.1 * huge.rate(2.0)
