"""When people arrive: a non-homogeneous Poisson process, drawn by thinning.

The rate is a pre-open trickle, a spike at opening that decays exponentially, and a floor
after it. The spike's height is the peak rate asked for; its length (tau) is set so the
spike and tail together bring the expected crowd (registrations x show-up rate), capped so
the tail has decayed by the end of the run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    duration: float  # seconds of arrivals, pre-open included
    opens_after: float  # seconds of pre-open trickle
    peak_rate: float  # arrivals per second at the moment of opening
    crowd: float  # expected arrivals from opening on
    trickle: float = 0.02  # the pre-open and late rate, as a fraction of the peak

    @property
    def floor(self) -> float:
        return self.peak_rate * self.trickle

    @property
    def tau(self) -> float:
        """Seconds for the spike to fall to 1/e; at most a third of the open part of the run."""
        open_seconds = max(self.duration - self.opens_after, 0.0)
        wanted = max(self.crowd - self.floor * open_seconds, 0.0) / self.peak_rate
        return max(min(wanted, open_seconds / 3), 0.05)

    def rate(self, t: float) -> float:
        if t < self.opens_after:
            return self.floor
        return self.floor + self.peak_rate * math.exp(-(t - self.opens_after) / self.tau)

    def expected(self, start: float, end: float) -> float:
        """The integral of the rate over [start, end): the mean count of arrivals there."""
        start, end = max(start, 0.0), min(end, self.duration)
        if end <= start:
            return 0.0
        total = self.floor * (end - start)
        a, b = max(start, self.opens_after), end
        if b > a:
            o, tau = self.opens_after, self.tau
            total += self.peak_rate * tau * (math.exp(-(a - o) / tau) - math.exp(-(b - o) / tau))
        return total


def arrival_times(shape: Shape, *, rng: random.Random) -> Iterator[float]:
    """Arrival instants in [0, duration), in order (Lewis and Shedler's thinning)."""
    ceiling = shape.floor + shape.peak_rate
    t = 0.0
    while True:
        t += rng.expovariate(ceiling)
        if t >= shape.duration:
            return
        if rng.random() * ceiling < shape.rate(t):
            yield t
