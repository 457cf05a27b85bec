"""Sends the crowd over HTTP (orders.rehearsal.http, one asyncio loop) and queues walk-ins at each store.

Open loop: each person leaves at their arrival instant whatever the server has answered so
far; how late the client itself was is kept (`client_lag`), so a driver that could not keep
up shows in the report rather than passing for a slow server.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson
from django.db import connection

from inventory.models import Launch, Stock
from inventory.services import location_for_store
from orders.rehearsal.arrivals import Shape, arrival_times
from orders.rehearsal.crowd import Behaviour, Customer, Person, person_draw, retry_wait
from orders.rehearsal.http import Client
from orders.services.walkin import SoldOut, ticket_issue, ticket_pass_over, ticket_serve_next
from stores.models import Store

ORDERS_PATH = "/api/v1/orders/"
BULK_PATH = "/api/v1/orders/bulk"
TRY_AGAIN = (429, 503)
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 4000
REPLAY_TRIES = 15


@dataclass(frozen=True)
class Target:
    url: str
    launch: str
    key: str  # the customers' orders, as the partner's storefront sends them
    bulk_key: str  # the partner's back office, a second key with its own rate limit
    stores: tuple[str, ...]  # stores the partner may take collect orders for


@dataclass
class CrowdRun:
    people: list[Person] = field(default_factory=list)
    client_lag: list[float] = field(default_factory=list)
    customers_left: int = 0
    finished_at: float = 0.0


def order_body(*, launch: str, customer: Customer, collect: bool) -> dict[str, str]:
    body = {
        "launch": launch,
        "customer": customer.account,
        "postcode": customer.postcode,
        "sku": customer.sku,
        "fulfilment": "delivery",
    }
    if collect and customer.store:
        body.update(fulfilment="collect", store=customer.store)
    return body


class Crowd:
    """One rehearsal's people: arrivals, their requests, their retries and their verdicts."""

    def __init__(
        self,
        *,
        target: Target,
        shape: Shape,
        behaviour: Behaviour,
        customers: list[Customer],
        seed: int,
        run_id: str,
        grace: float = 15.0,
        progress: Callable[[dict], None] | None = None,
    ):
        self.target, self.shape, self.behaviour = target, shape, behaviour
        self.customers, self.next_customer = customers, 0
        self.rng = random.Random(seed)
        self.run_id = run_id
        self.grace = grace
        self.progress = progress
        self.run = CrowdRun()
        self.start = 0.0

    def take(self, count: int) -> list[Customer]:
        chosen = self.customers[self.next_customer : self.next_customer + count]
        self.next_customer += len(chosen)
        return chosen

    def now(self) -> float:
        return time.monotonic() - self.start

    async def go(self) -> CrowdRun:
        self.start = time.monotonic()
        self.hard_stop = self.shape.duration + self.grace
        self.client = Client(self.target.url, max_connections=MAX_CONNECTIONS, timeout=REQUEST_TIMEOUT)
        tasks: set[asyncio.Task] = set()
        last_progress = 0.0
        for number, at in enumerate(arrival_times(self.shape, rng=self.rng)):
            delay = at - self.now()
            if delay > 0.001:
                await asyncio.sleep(delay)
            self.run.client_lag.append(max(self.now() - at, 0.0))
            person = person_draw(
                number=number, arrived=at, rng=self.rng, behaviour=self.behaviour, take=self.take
            )
            if person is None:
                break  # every registered customer has come
            self.run.people.append(person)
            task = asyncio.create_task(self.serve(person))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if self.progress and at - last_progress >= 1.0:
                last_progress = at
                # The callback may write to the database: not from the event loop's thread.
                asyncio.get_running_loop().run_in_executor(None, self.progress, self.tally())
        if tasks:
            await asyncio.gather(*tasks)
        # A request that got no answer may have been admitted: the device asks again once
        # (same Idempotency-Key, same body), as a phone back online would, so every order
        # the stack kept is one the simulator can account for.
        await asyncio.gather(*(self.replay(p, *req) for p in self.run.people for req in p.unanswered))
        await self.client.close()
        self.run.customers_left = len(self.customers) - self.next_customer
        self.run.finished_at = self.now()
        return self.run

    def tally(self) -> dict:
        people = self.run.people
        return {
            "t": round(self.now(), 1),
            "arrived": len(people),
            "admitted": sum(1 for p in people if p.outcome == "admitted"),
            "waiting_for_answer": sum(1 for p in people if p.outcome == "pending"),
        }

    async def serve(self, person: Person) -> None:
        first = person.customers[0]
        collect = self.rng.random() < self.behaviour.collect
        if person.kind == "bulk":
            body = {
                "orders": [
                    order_body(launch=self.target.launch, customer=c, collect=collect)
                    for c in person.customers
                ]
            }
            person.orders = len(person.customers)
            await self.ask(person, BULK_PATH, body, key=self.target.bulk_key, idempotency_key=None)
        elif person.kind == "two_devices":
            body = order_body(launch=self.target.launch, customer=first, collect=collect)
            person.orders = 2
            # Two devices, two idempotency keys: the server must keep one order, and say so.
            await asyncio.gather(
                *(
                    self.ask(
                        person,
                        ORDERS_PATH,
                        body,
                        key=self.target.key,
                        idempotency_key=f"{self.run_id}-{person.number}-{d}",
                    )
                    for d in "ab"
                )
            )
        else:
            body = order_body(launch=self.target.launch, customer=first, collect=collect)
            person.orders = 1
            await self.ask(
                person,
                ORDERS_PATH,
                body,
                key=self.target.key,
                idempotency_key=f"{self.run_id}-{person.number}",
            )

    async def ask(
        self, person: Person, path: str, body: dict, *, key: str, idempotency_key: str | None
    ) -> None:
        """One device's tries until a verdict, the person's patience, or the end of the run."""
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        if idempotency_key:
            # The same key on every retry: a retry of an order that was in fact admitted
            # gets the original answer back, never a second order.
            headers["Idempotency-Key"] = idempotency_key
        content = orjson.dumps(body)
        no_answer = False
        while True:
            person.attempts += 1
            status, code, retry_after, payload = await self.post(path, content, headers)
            t = self.now()
            person.answers.append((round(t, 3), status, code))
            refusals_count(person, status, code, payload)
            no_answer = no_answer or status < 0
            # Before opening, people keep refreshing: "not open yet" is "try again" to them.
            not_yet = status == 409 and code == "launch_not_open"
            if status in TRY_AGAIN or status < 0 or status >= 500 or not_yet:
                wait = retry_wait(
                    retry_after=retry_after if status in TRY_AGAIN else 1.0,
                    jitter=self.behaviour.jitter,
                    rng=self.rng,
                )
                leaving = t + wait - person.arrived > person.patience or t + wait > self.hard_stop
                if leaving:
                    if person.outcome == "pending":
                        person.outcome = "gave_up" if t + wait <= self.hard_stop else "unanswered"
                    if no_answer:
                        person.unanswered.append((path, content, headers))
                    return
                await asyncio.sleep(wait)
                continue
            if person.verdict_at is None:
                person.verdict_at = t
            self.verdict(person, status, code, payload)
            return

    async def replay(self, person: Person, path: str, content: bytes, headers: dict) -> None:
        for _ in range(REPLAY_TRIES):
            status, code, retry_after, payload = await self.post(path, content, headers)
            person.replay_requests += 1
            person.replay_unanswered += status < 0
            refusals_count(person, status, code, payload)
            if status in TRY_AGAIN or status < 0 or status >= 500:
                await asyncio.sleep(retry_after or 1.0)
                continue
            known = len(person.references)
            self.verdict(person, status, code, payload)
            person.told_late += len(person.references) - known
            return
        person.replay_failed += 1

    def verdict(self, person: Person, status: int, code: str, payload: dict) -> None:
        if status == 202:
            person.references.append(payload["reference"])
        elif status == 200 and "results" in payload:
            for result in payload["results"]:
                error = result.get("error") or {}
                if result.get("status") == 202:
                    person.references.append(result["order"]["reference"])
                elif error.get("code") == "already_ordered" and (error.get("details") or {}).get("reference"):
                    # A bulk has no Idempotency-Key: sent again after no answer, the orders
                    # admitted the first time answer already_ordered, naming the partner's
                    # own order (a bulk's customers are its own, so the order is this one's).
                    person.references.append(error["details"]["reference"])
        if person.references:
            person.outcome = "admitted"
        elif person.outcome == "pending":
            person.outcome = code or str(status)

    async def post(self, path: str, content: bytes, headers: dict) -> tuple[int, str, float | None, dict]:
        """(status, error code, Retry-After seconds, body); status -1 when no answer came."""
        reply = await self.client.post(path, content, headers)
        if reply.status < 0:
            return -1, "no_answer", None, {}
        try:
            payload = orjson.loads(reply.body) if reply.body else {}
        except orjson.JSONDecodeError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        error = payload.get("error")
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        return reply.status, code, reply.retry_after, payload


def refusals_count(person: Person, status: int, code: str, payload: dict) -> None:
    """Add an answer's refusals to the person's, under the reason the stack counts them by
    (config.metrics' launchday_orders_refused_total): a bulk's refused items one by one."""
    reasons: list[str] = []
    if status == 200 and isinstance(payload.get("results"), list):
        for result in payload["results"]:
            error = result.get("error") if isinstance(result, dict) else None
            if isinstance(error, dict) and error.get("code"):
                reasons.append(str(error["code"]))
    elif status >= 400:
        error = payload.get("error")
        details = error.get("details") if isinstance(error, dict) else None
        shed = details.get("reason") if code == "overloaded" and isinstance(details, dict) else None
        # An answer without the envelope (a proxy's or the server's own, not the API's) is
        # no refusal the stack counted: kept under its status, so the report can say so.
        reasons.append(str(shed or code or f"http_{status}"))
    for reason in reasons:
        person.refused[reason] = person.refused.get(reason, 0) + 1


@dataclass
class StoreMorning:
    store: str
    queued: int = 0
    sold: int = 0
    no_sale: int = 0
    opened_at: float = 0.0
    cleared_at: float = 0.0


WALKIN_STAFF = 4  # stores served at once (each its own database connection)


def walkins_run(
    *, launch_id: int, opens_at: float, started: float, behaviour: Behaviour
) -> list[StoreMorning]:
    """Each store's door at opening: a queue of walk-ins, served one by one until it clears.

    Through the walk-in service, as the store's staff page does; the staff's sign-in is not
    what is rehearsed. Runs in threads (Django's ORM is synchronous), a few stores at once.
    """
    wait = started + opens_at - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    launch = Launch.objects.get(pk=launch_id)
    skus = list(launch.skus.all())
    stores = list(Store.objects.order_by("code"))
    connection.close()
    with ThreadPoolExecutor(max_workers=WALKIN_STAFF) as staff:
        mornings = staff.map(
            lambda store: _store_morning(
                launch=launch, store=store, skus=skus, started=started, behaviour=behaviour
            ),
            stores,
        )
        return [m for m in mornings if m is not None]


def _store_morning(*, launch, store, skus, started: float, behaviour: Behaviour) -> StoreMorning | None:
    try:
        location = location_for_store(store=store)
        units = sum(Stock.objects.filter(location=location, sku__in=skus).values_list("on_hand", flat=True))
        if not units:
            return None
        morning = StoreMorning(store=store.code, opened_at=time.monotonic() - started)
        morning.queued = int(units * behaviour.walkin_queue)
        for _ in range(morning.queued):
            ticket_issue(launch=launch, store=store)
        for n in range(morning.queued):
            for sku in skus[n % len(skus) :] + skus[: n % len(skus)]:
                try:
                    ticket_serve_next(launch=launch, store=store, sku=sku)
                except SoldOut:
                    continue
                morning.sold += 1
                break
            else:
                ticket_pass_over(launch=launch, store=store)
                morning.no_sale += 1
        morning.cleared_at = time.monotonic() - started
        return morning
    finally:
        connection.close()


def run_in_thread(target: Callable, **kwargs) -> tuple[threading.Thread, list]:
    """Start `target(**kwargs)` in a daemon thread; its result lands in the returned list."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(target(**kwargs)), daemon=True)
    thread.start()
    return thread, box
