"""Polled panels answered from the event loop, with Django's latest answer.

Head office's screens poll two panels (the launch overview's live figures every 5 s, the
System panel every 2 s), ten screens at once on launch morning, and a poll should answer
within 20 ms while pages load beside it (issue 11). Through Django a poll costs ~15 ms
of CPU of its own (session, user, second factor, render, gzip, three hand-overs between
threads) on the same threads and GIL as the pages being loaded, so its tail under load
was 5x that. A panel's answer is the same for everyone allowed to see it, so each
process keeps Django's latest answer to each panel and answers polls from memory in the
event loop, as admission is answered (orders.api.front):

- Which panels: a view says its polled (htmx) answer may be shared with @panel_shared,
  which marks the answer only once the view's own access check has let the request in.
  Nothing is shared that Django has not marked.
- Who: a session is answered from memory only for a panel Django has answered that
  session with its mark (its *pass*). Each pass is asked again of Django in the
  background once it is POLL_RECHECK_SECONDS old; when Django no longer grants it (signed
  out, no longer head office) the pass is dropped and the session's next poll goes to
  Django and gets its refusal. A pass not renewed for PASS_LIMIT_SECONDS is not used.
- How fresh: an answer older than POLL_SHARE_SECONDS is refreshed in the background with the
  poll that finds it so (one refresh per panel at a time) while that poll gets the
  answer in hand. An answer older than ANSWER_LIMIT_SECONDS (Django has not given one
  since: an error, a refusal, or no thread free) is not served; the poll goes to Django.

So a panel is at most POLL_SHARE_SECONDS and one answer of Django's old (the figures in it
are themselves shared for 1-2 s: config.watch, orders.selectors.pulse), and a session
that may no longer see a panel sees it for at most POLL_RECHECK_SECONDS and one poll
more. Every shared answer carries Age, as any HTTP cache's does. POLL_SHARE_SECONDS = 0
turns the sharing off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.cookie import parse_cookie

from config.scopes import App, Message, Receive, Scope, Send, django_serves_as_is

logger = logging.getLogger(__name__)


# The view's mark on an answer that may be shared (a response header: it is what crosses
# from Django's threads to the event loop).
SHARED_MARK = "Launchday-Shared-Panel"
_MARK = SHARED_MARK.lower().encode()
PASS_LIMIT_SECONDS = 60.0
ANSWER_LIMIT_SECONDS = 10.0
# Passes of sessions gone quiet are forgotten when there are more than this many.
_PASSES_KEPT = 10_000


def panel_shared(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark the view's polled (htmx) answer as the same for everyone its access check lets
    in: put it under the access decorators, so a refusal is never marked."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if getattr(request, "htmx", False) and response.status_code == 200 and not response.cookies:
            response[SHARED_MARK] = "1"
        return response

    return wrapped


@dataclass(frozen=True)
class Kept:
    at: float  # time.monotonic() when Django answered (a 200: nothing else is kept)
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Heard:
    """What Django sent for one request, as it went past."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytearray | None = None
    length: int | None = None
    whole: bool = False

    def hear(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers, self.body = (
                message["status"],
                list(message.get("headers", [])),
                bytearray(),
            )
            length = next((value for name, value in self.headers if name.lower() == b"content-length"), None)
            self.length = int(length) if length is not None and length.isdigit() else None
        elif message["type"] == "http.response.body" and self.body is not None:
            self.body += message.get("body", b"")
            # A client has the whole answer once Content-Length bytes are here (the WSGI
            # bridge's closing empty message may come after its next request).
            self.whole = not message.get("more_body", False) or (
                self.length is not None and len(self.body) >= self.length
            )

    def shared(self) -> bool:
        return (
            self.whole
            and self.status == 200
            and self.headers is not None
            and any(name.lower() == _MARK for name, _ in self.headers)
            and not any(name.lower() == b"set-cookie" for name, _ in self.headers)
        )


class PolledPanels:
    """The ASGI layer: polls of shared panels from memory, everything else to `app`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.share_seconds = settings.POLL_SHARE_SECONDS
        self.recheck_seconds = settings.POLL_RECHECK_SECONDS
        self.answers: dict[tuple[str, bool], Kept] = {}
        self.passes: dict[tuple[str, str], float] = {}  # (session, path) -> when Django last granted it
        self.refreshing: set[tuple[str, bool]] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        poll = self.poll_of(scope)
        if poll is None:
            await self.app(scope, receive, send)
            return
        key, session = poll
        now = time.monotonic()
        kept = self.answers.get(key)
        granted = self.passes.get((session, key[0]))
        if (
            kept is None
            or granted is None
            or now - kept.at >= ANSWER_LIMIT_SECONDS
            or now - granted >= PASS_LIMIT_SECONDS
        ):
            await self.through_django(scope, receive, send, key=key, session=session)
            return
        await send_kept(kept, send, now=now)
        if (
            now - kept.at >= self.share_seconds or now - granted >= self.recheck_seconds
        ) and key not in self.refreshing:
            self.refreshing.add(key)
            task = asyncio.create_task(self.refresh(scope, key=key, session=session))
            self._tasks.add(task)  # a task nobody holds may be collected mid-way
            task.add_done_callback(self._tasks.discard)

    def poll_of(self, scope: Scope) -> tuple[tuple[str, bool], str] | None:
        """(the answer's key, the session) of a poll that may be answered from memory."""
        if self.share_seconds <= 0 or scope["type"] != "http" or scope["method"] != "GET":
            return None
        if scope.get("query_string"):
            return None
        headers = dict(scope["headers"])
        if headers.get(b"hx-request") != b"true" or b"cookie" not in headers:
            return None
        session = parse_cookie(headers[b"cookie"].decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
        if not session or not django_serves_as_is(scope):
            return None
        # Django's gzip middleware answers each kind of client its own way.
        gzip = b"gzip" in headers.get(b"accept-encoding", b"").lower()
        return (scope["path"], gzip), session

    async def through_django(
        self, scope: Scope, receive: Receive, send: Send | None, *, key: tuple[str, bool], session: str
    ) -> None:
        """Django's answer, passed on to `send` (None: heard only) and learnt from."""
        heard = Heard()
        learnt = False

        async def sending(message: Message) -> None:
            nonlocal learnt
            heard.hear(message)
            if heard.whole and not learnt:  # before the client has it: its next poll may follow at once
                learnt = True
                self.learn(heard, key=key, session=session)
            if send is not None:
                await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not learnt:
                self.learn(heard, key=key, session=session)

    async def refresh(self, scope: Scope, *, key: tuple[str, bool], session: str) -> None:
        """Ask Django again, as the poll that found the answer or its pass old asked."""

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        try:
            await self.through_django(scope, no_body, None, key=key, session=session)
        except Exception:  # the next poll asks Django itself
            logger.exception("refreshing a shared panel failed", extra={"path": key[0]})
        finally:
            self.refreshing.discard(key)

    def learn(self, heard: Heard, *, key: tuple[str, bool], session: str) -> None:
        """Keep Django's answer and the session's pass, or drop them: what Django said last holds."""
        path = key[0]
        if heard.shared():
            assert heard.headers is not None and heard.body is not None
            headers = [(name, value) for name, value in heard.headers if name.lower() not in _NOT_KEPT]
            self.answers[key] = Kept(time.monotonic(), headers, bytes(heard.body))
            if len(self.passes) >= _PASSES_KEPT and (session, path) not in self.passes:
                self._forget_quiet_passes()
            self.passes[(session, path)] = time.monotonic()
            return
        self.passes.pop((session, path), None)
        if heard.status >= 500 or heard.status == 0:
            # Django failed at it: nobody is answered from a panel it can no longer give.
            self.answers.pop(key, None)

    def _forget_quiet_passes(self) -> None:
        oldest = time.monotonic() - PASS_LIMIT_SECONDS
        for kept_pass, granted in list(self.passes.items()):
            if granted < oldest:
                del self.passes[kept_pass]
        while len(self.passes) >= _PASSES_KEPT:  # all recent: the oldest go
            del self.passes[next(iter(self.passes))]


# The request's own: its id (orders.api.front adds the poll's), the server's date.
_NOT_KEPT = frozenset({b"x-request-id", b"date", b"server", b"age"})


async def send_kept(kept: Kept, send: Send, *, now: float) -> None:
    headers = [*kept.headers, (b"age", str(int(now - kept.at)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body})
