"""Who arrives and how they behave: drawn once per person, from a seeded generator."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Customer:
    account: str
    postcode: str
    sku: str  # the model they registered for
    store: str | None  # their preferred store, when it is one the partner's key may order for


@dataclass(frozen=True)
class Behaviour:
    show_up: float = 0.6  # share of registered customers who come on the morning
    two_devices: float = 0.05  # share who press the button on their phone and laptop at once
    bulk: float = 0.01  # share of arrivals that are a partner's bulk request
    bulk_size: int = 40
    collect: float = 0.3  # share who collect at their store when they may
    patience_mean: float = 20.0  # seconds before giving up, exponential per person
    patience_min: float = 2.0
    jitter: bool = True  # wait Retry-After x U(1, 2) instead of exactly Retry-After
    walkin_queue: float = 1.5  # people queueing at each store per unit it holds


@dataclass
class Person:
    """One arrival: one customer, or a partner's bulk request of several."""

    number: int
    arrived: float
    kind: str  # "single", "two_devices" or "bulk"
    customers: list[Customer]
    patience: float
    attempts: int = 0
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # (t, status, code)
    references: list[str] = field(default_factory=list)  # every reference a 202 named
    verdict_at: float | None = None  # first answer that is not "try again"
    outcome: str = "pending"  # admitted, refused code, gave_up, unanswered
    orders: int = 0  # orders it asked for
    # Requests that got no answer before the person left: the order may exist all the same.
    unanswered: list[tuple[str, bytes, dict]] = field(default_factory=list)
    told_late: int = 0  # references learnt only by the replay after the run
    replay_failed: int = 0  # replays that never got an answer either
    # Every refusal the person was told (each try, replays and a bulk's items included), by
    # reason as the stack counts it in /metrics: the envelope's code, or for a 503 why it shed.
    refused: dict[str, int] = field(default_factory=dict)
    replay_requests: int = 0  # requests sent by the replay after the run
    replay_unanswered: int = 0  # of those, the ones that got no answer

    @property
    def time_to_verdict(self) -> float | None:
        return None if self.verdict_at is None else self.verdict_at - self.arrived


def person_draw(
    *, number: int, arrived: float, rng: random.Random, behaviour: Behaviour, take
) -> Person | None:
    """The person arriving at `arrived`; `take(n)` hands out the next n customers (fewer at the end)."""
    roll = rng.random()
    if roll < behaviour.bulk:
        kind, wanted = "bulk", behaviour.bulk_size
    elif roll < behaviour.bulk + behaviour.two_devices:
        kind, wanted = "two_devices", 1
    else:
        kind, wanted = "single", 1
    customers = take(wanted)
    if not customers:
        return None
    patience = behaviour.patience_min + rng.expovariate(1.0 / behaviour.patience_mean)
    return Person(number=number, arrived=arrived, kind=kind, customers=customers, patience=patience)


def retry_wait(*, retry_after: float | None, jitter: bool, rng: random.Random) -> float:
    """How long a refused person waits: Retry-After exactly, or stretched at random (never shorter)."""
    wait = retry_after if retry_after is not None and retry_after > 0 else 1.0
    return wait * (1.0 + rng.random()) if jitter else wait
