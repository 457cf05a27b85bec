"""What a log line is about: the request it belongs to, and the launch, partner, store and
order it concerns, on every line written while that work runs (structured JSON logs).

The context lives in context variables, so each request (a thread under WSGI, a coroutine
in the ASGI front) and each Celery task sees only its own. It is set:

- by the ASGI front and RequestIdMiddleware for each request: X-Request-ID when the
  client or a proxy sent a sane one, else a new one; echoed on the answer either way;
- by code that learns what the work concerns (`log_context(launch=..., order=...)`);
- in a Celery task, from the message: a task sent while a request or task runs carries
  its request id in a header (`before_task_publish`) and the task runs under it
  (`task_prerun`), so one id follows an order from its request into the allocator's batch
  and the email it causes;
- in a thread that works for many requests (group commit's batch thread), around each
  request's own work, from the context saved when it joined (`log_context_restored`).

RequestContextFilter puts the fields on every record; the JSON formatter
(python-json-logger, settings.LOGGING) writes them out.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest, HttpResponse

FIELDS = ("request_id", "launch", "partner", "store", "order")
HEADER = "X-Request-ID"
# The Celery message header that carries the request id into a task.
TASK_HEADER = "launchday_request_id"
# A request id from outside is kept only if it is short and plain: it goes into every log
# line, so it must not be able to forge fields or lines.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "launchday_log_context", default=MappingProxyType({})
)


def request_id_from(value: str | bytes | None) -> str:
    """The id a request runs under: the one it brought, if sane, else a new one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and _SANE_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def log_context(**fields: Any) -> None:
    """Add to what the current request or task is about (None values are left out)."""
    current = dict(_context.get())
    current.update({name: str(value) for name, value in fields.items() if value is not None})
    _context.set(current)


def log_context_start(request_id: str) -> contextvars.Token:
    """Begin a fresh context (a request, a task); reset it with the returned token."""
    return _context.set({"request_id": request_id})


def log_context_end(token: contextvars.Token) -> None:
    _context.reset(token)


def current_request_id() -> str | None:
    return _context.get().get("request_id")


def log_context_saved() -> Mapping[str, str]:
    """What the current request or task is about, to carry to a thread that works for it
    (group commit's batch thread): see log_context_restored."""
    return _context.get()


@contextlib.contextmanager
def log_context_restored(saved: Mapping[str, str] | None) -> Iterator[None]:
    """Run a block under a saved context: one request's work done by a thread that serves
    many, so its lines and the tasks it sends carry that request's id. None (nothing was
    saved) leaves the current context as it is."""
    if saved is None:
        yield
        return
    # log_context never mutates a context it did not make, so sharing the mapping is safe.
    token = _context.set(saved)
    try:
        yield
    finally:
        _context.reset(token)


class RequestContextFilter(logging.Filter):
    """Put the current context's fields on each record ("" when unknown), so every line
    has the same keys and a search for a field never misses a line for its absence."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, ""))
        return True


class RequestIdMiddleware:
    """Run each Django request under its request id and echo the id on the answer.

    Under `make serve` the ASGI front has already chosen the id and put it in the
    request's headers, so both agree; under WSGI alone (tests, `make demo`) this chooses.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        token = log_context_start(request_id)
        try:
            response = self.get_response(request)
        finally:
            log_context_end(token)
        response[HEADER] = request_id
        return response


def task_headers_add(headers: dict | None = None, **kwargs: Any) -> None:
    """before_task_publish: a task sent during a request or task carries its request id."""
    request_id = current_request_id()
    if request_id and headers is not None:
        headers[TASK_HEADER] = request_id


_task_tokens: dict[str, contextvars.Token] = {}


def task_context_start(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """task_prerun: run the task under the request id it was sent with (or a new one)."""
    request = getattr(task, "request", None)
    sent = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    # No header: an eager task inside a request (it keeps the request's id), or a task
    # beat sent (a new id).
    token = log_context_start(request_id_from(sent or current_request_id()))
    if task_id:
        _task_tokens[task_id] = token


def task_context_end(task_id: str | None = None, **kwargs: Any) -> None:
    """task_postrun: leave the task's context (a pool process runs many tasks)."""
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        try:
            _context.reset(token)
        except ValueError:  # reset from another context (an eager task inside a request)
            _context.set({})
