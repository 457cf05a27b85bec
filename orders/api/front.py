"""The admission front: POST /api/v1/orders/ served in the event loop, everything else by Django.

An ASGI application (config/asgi.py) in front of the Django project:

- A single-order POST is handled here, in the server's event loop. Its body is read as
  the bytes arrive, so a slow or stalled client costs a coroutine and holds nothing; the
  rules run on this process's caches; the order joins the process's group commit
  (orders.services.group_commit) and the coroutine waits for its batch on a future.
  Authentication, the throttle, validation and every answer are the partner API's own
  functions (orders.api.*), so this path and the DRF view (the same URL under WSGI:
  tests, `make demo`) answer alike; a test holds them to it.
- Everything else goes to Django's WSGI application on a pool of threads (a2wsgi). Its
  body is read here first, whole and bounded, so a slow body never holds a thread.
  Polls of the panels Django marks as shared are answered from its latest answer in
  memory (config.polls).

Admission control: a request is refused at once (503, Retry-After, nothing written)
when it could not be answered within ADMISSION_DEADLINE_MS: when more admissions are in
flight in this process than it can finish in that time at its recent pace, or when
this request already waited past its deadline before its turn came (the event loop was
behind). Refusing at the door is what keeps the admitted rate at capacity under any
overload: a request that will time out anyway gets a cheap answer, not a costly one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.db import DatabaseError, connection

from config.cache import NotCached
from config.heap import heap_settle
from config.logcontext import log_context, log_context_end, log_context_start, request_id_from
from config.metrics import order_refused, orders_admitted, process_exited
from config.polls import PolledPanels
from config.scopes import Message, Receive, Scope, Send, django_serves_as_is
from orders.api.auth import (
    HasOrdersScope,
    PartnerKey,
    key_from_header,
    partner_key_cached,
    partner_key_resolve,
)
from orders.api.errors import MESSAGES, InvalidJSON, error_body
from orders.api.rendering import json_parse, order_json, orjson_default
from orders.api.throttles import proof_failures_add, proof_failures_wait, throttle_wait
from orders.api.validation import idempotency_key_valid, order_request_validate
from orders.codes import ErrorCode
from orders.models import Order
from orders.services.admission import AdmissionRefused
from orders.services.catalogue import admission_warm
from orders.services.group_commit import BatchFailed, group_commit, order_admit_grouped_async

logger = logging.getLogger(__name__)

# The headers Django's middleware puts on an API answer, put here on the fast path's.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


class Disconnected(Exception):
    pass


async def read_body(receive: Receive, *, limit: int, timeout: float) -> bytes:
    """The whole request body, as it arrives: bounded in size and in time, holding no thread."""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BodyTooSlow
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            raise BodyTooSlow from None
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class LoopLag:
    """How late this process's event loop runs its callbacks: the time a request now
    waits before any of its code runs. Measured by a tick every TICK seconds."""

    TICK = 0.01

    def __init__(self) -> None:
        self.lag = 0.0
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        expected = loop.time() + self.TICK

        def tick() -> None:
            nonlocal expected
            now = loop.time()
            self.lag = max(0.0, now - expected)
            expected = now + self.TICK
            loop.call_at(expected, tick)

        loop.call_at(expected, tick)


class Answer:
    """A prepared HTTP answer: status, JSON body, extra headers; for the metrics, why an
    order was refused (`refusal`) or whether a new one was written (`admitted`)."""

    __slots__ = ("status", "body", "headers", "refusal", "admitted")

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        refusal: str | None = None,
        admitted: bool = False,
    ):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.refusal = refusal
        self.admitted = admitted

    def count(self) -> None:
        """Add this answer to the stack's admission figures (config.metrics)."""
        if self.admitted:
            orders_admitted(path="single")
        elif self.refusal is not None:
            order_refused(self.refusal)

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            *_SECURITY_HEADERS,
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def envelope(code: ErrorCode, message: str, details: dict | None = None, **headers: str) -> Answer:
    return Answer(
        code.status,
        orjson.dumps(error_body(code, message, details)),
        [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()],
        refusal=code.value,
    )


def overloaded(reason: str) -> Answer:
    answer = envelope(
        ErrorCode.OVERLOADED,
        MESSAGES[ErrorCode.OVERLOADED],
        {"reason": reason},
        retry_after=str(settings.ADMISSION_RETRY_AFTER_SECONDS),
    )
    answer.refusal = reason
    return answer


class Pace:
    """How many admissions this process can finish per second: the best one-second rate
    it has reached lately (a busy second shows what it can do; an idle one says nothing),
    fading by a tenth a minute so a slower database is noticed."""

    def __init__(self) -> None:
        self.window_start = time.monotonic()
        self.count = 0
        self.peak = 0.0

    def done(self) -> None:
        now = time.monotonic()
        elapsed = now - self.window_start
        if elapsed >= 1.0:
            rate = self.count / elapsed
            self.peak = max(rate, self.peak * 0.9 ** (elapsed / 60))
            self.window_start, self.count = now, 0
        self.count += 1


class AdmissionFront:
    """The ASGI application: admissions here, the rest to Django (see the module doc)."""

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.django = PolledPanels(WSGIMiddleware(wsgi_app, workers=settings.WEB_THREADS))
        self.paths = frozenset(settings.ADMISSION_PATHS)
        self.deadline = settings.ADMISSION_DEADLINE_MS / 1000.0
        self.in_flight = 0
        self.pace = Pace()
        self.lag = LoopLag()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # Websockets are not served.
        scope, request_id = with_request_id(scope)
        token = log_context_start(request_id)
        send = echo_request_id(send, request_id)
        try:
            if scope["method"] == "POST" and scope["path"] in self.paths and self.fast_path_fits(scope):
                await self.admit(scope, receive, send)
            else:
                await self.to_django(scope, receive, send)
        finally:
            log_context_end(token)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.lag.start()
                # Load the launches' catalogues and eligibility before the first order.
                await asyncio.to_thread(admission_warm)
                heap_settle()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                process_exited()  # this worker's metrics files (config.metrics)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def fast_path_fits(self, scope: Scope) -> bool:
        """Whether Django would serve this request as it stands: anything its middleware
        would turn away or redirect (an unknown Host, plain HTTP where HTTPS is required)
        goes to Django, which says so properly."""
        # A query string means nothing to admission; Django's checks of it (config.inputs)
        # answer such a rare request, so both paths give the same answer to every input.
        return django_serves_as_is(scope) and not scope.get("query_string")

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.door()
        if answer is not None:
            answer.count()
            await answer.send(send)
            return
        try:
            body = await read_body(receive, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, timeout=30.0)
        except BodyTooLarge:
            answer = envelope(ErrorCode.PAYLOAD_TOO_LARGE, "The body is larger than this API accepts.")
        except BodyTooSlow:
            answer = envelope(ErrorCode.INVALID_JSON, "The body did not arrive in time.")
        except Disconnected:
            return
        else:
            # Counted in flight only once its body is here: a client trickling its body costs
            # a coroutine, and must not make the door refuse the orders that are ready.
            self.in_flight += 1
            try:
                answer = await admission_answer(dict(scope["headers"]), body)
            except DatabaseError:
                # The database is away (a key or a customer not in memory needed it):
                # nothing was written, so the truth is "busy, retry".
                answer = overloaded("database_unavailable")
            except Exception:  # a fault of ours: logged, and an envelope, never a page
                logger.exception("admission failed")
                answer = envelope(ErrorCode.SERVER_ERROR, "Something went wrong on our side.")
            finally:
                self.in_flight -= 1
            self.pace.done()
        answer.count()
        await answer.send(send)

    def door(self) -> Answer | None:
        """Refuse at once what this process could not answer within the deadline."""
        if self.lag.lag > self.deadline / 2:
            return overloaded("queued_too_long")
        capacity = max(settings.ADMISSION_MIN_IN_FLIGHT, int(self.pace.peak * self.deadline))
        if self.in_flight >= capacity or group_commit().expected_wait() > self.deadline:
            return overloaded("too_many_in_flight")
        return None

    async def to_django(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Django in a thread, with its body read here first: a slow body holds no thread."""
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            try:
                body = await read_body(receive, limit=settings.WEB_MAX_BODY_BYTES, timeout=30.0)
            except BodyTooLarge:
                # Django would refuse it too, after holding it all: the envelope, as every
                # API error is (a page's form never comes near the limit).
                await envelope(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"The body is larger than this server accepts ({settings.WEB_MAX_BODY_BYTES:,} bytes).",
                ).send(send)
                return
            except BodyTooSlow:
                await envelope(ErrorCode.INVALID_JSON, "The body did not arrive in time.").send(send)
                return
            except Disconnected:
                return
            # The body is whole now: Django reads it by its length, however it came (chunked too).
            scope = dict(scope)
            scope["headers"] = [
                (name, value)
                for name, value in scope["headers"]
                if name not in (b"content-length", b"transfer-encoding")
            ] + [(b"content-length", str(len(body)).encode())]
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.django(scope, replay, send)
            return
        await self.django(scope, receive, send)


def with_request_id(scope: Scope) -> tuple[Scope, str]:
    """The request's id (config.logcontext), written into its headers so Django's
    RequestIdMiddleware runs it under the same id."""
    sent = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
    request_id = request_id_from(sent)
    if sent is None or sent != request_id.encode("latin-1"):
        scope = dict(scope)
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"x-request-id"] + [
            (b"x-request-id", request_id.encode("latin-1"))
        ]
    return scope, request_id


def echo_request_id(send: Send, request_id: str) -> Send:
    """send, with X-Request-ID on the answer (Django's answers carry it already)."""
    value = request_id.encode("latin-1")

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                message = {**message, "headers": [*headers, (b"x-request-id", value)]}
        await send(message)

    return sending


async def _caller(key: str) -> PartnerKey | None:
    """The partner behind a key: from this process's memory, or found in a thread."""
    try:
        return partner_key_cached(key=key)
    except NotCached:
        return await asyncio.to_thread(_resolve_in_thread, key)


def _proof_failed_in_thread(key_id: str) -> None:
    try:
        proof_failures_add(key_id=key_id)
    finally:
        connection.close()


def _resolve_in_thread(key: str) -> PartnerKey | None:
    try:
        return partner_key_resolve(key=key)
    finally:
        connection.close()  # back to the pool


async def admission_answer(headers: dict[bytes, bytes], body: bytes) -> Answer:
    """The partner API's POST /api/v1/orders/, as its DRF view answers it, from raw parts."""
    raw = headers.get(b"authorization")
    key = key_from_header(raw.decode("latin-1")) if raw else None
    holder = await _caller(key) if key else None
    if holder is None:
        return envelope(
            ErrorCode.NOT_AUTHENTICATED, MESSAGES[ErrorCode.NOT_AUTHENTICATED], www_authenticate="Api-Key"
        )
    if not HasOrdersScope.allows(holder):
        return envelope(ErrorCode.PERMISSION_DENIED, HasOrdersScope.message)
    wait = throttle_wait(key_id=holder.key_id)
    if wait is None:
        wait = proof_failures_wait(key_id=holder.key_id)
    if wait is not None:
        return envelope(
            ErrorCode.THROTTLED, MESSAGES[ErrorCode.THROTTLED], retry_after=str(max(1, int(wait + 0.999)))
        )
    try:
        data = json_parse(body)
    except InvalidJSON as refused:
        return envelope(refused.code, refused.message, refused.details)
    if not isinstance(data, dict):
        return envelope(ErrorCode.INVALID_JSON, "The body must be a JSON object.")
    idempotency = headers.get(b"idempotency-key")
    idempotency_key = idempotency.decode("latin-1") if idempotency is not None else None
    if idempotency_key is not None and not idempotency_key_valid(idempotency_key):
        return envelope(
            ErrorCode.VALIDATION_ERROR,
            MESSAGES[ErrorCode.VALIDATION_ERROR],
            {"Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]},
        )
    request, errors = order_request_validate(data)
    if request is None:
        return envelope(ErrorCode.VALIDATION_ERROR, MESSAGES[ErrorCode.VALIDATION_ERROR], errors)
    log_context(launch=request.launch, partner=holder.partner_id, store=request.store)
    try:
        admission = await order_admit_grouped_async(
            launch=request.launch,
            customer=request.customer,
            sku=request.sku,
            fulfilment=request.fulfilment,
            store=request.store,
            postcode=request.postcode,
            channel=Order.Channel.PARTNER,
            partner_id=holder.partner_id,
            idempotency_key=idempotency_key,
            idempotency_scope=holder.idempotency_scope,
        )
    except AdmissionRefused as refused:
        if refused.failed_proof:
            await asyncio.to_thread(_proof_failed_in_thread, holder.key_id)
        return envelope(refused.code, refused.message, refused.details)
    except (BatchFailed, DatabaseError):
        # The database is away: nothing of this request was committed.
        return overloaded("database_unavailable")
    log_context(order=admission.order.reference)
    return Answer(
        202,
        orjson.dumps(order_json(admission.order), default=orjson_default),
        admitted=not admission.replayed,
    )
