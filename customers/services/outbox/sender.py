"""Sending a claimed batch over one SMTP connection, and draining the outbox.

Each message is marked sent the moment the server accepts it (SentMarker), so a killed
sender can only ever leave one accepted-but-unmarked message behind.
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.core.mail.message import sanitize_address
from django.db import DatabaseError, connection
from django.utils import timezone
from psycopg import pq

from config.logcontext import log_context
from config.metrics import EMAILS
from customers.models import Message
from customers.services.outbox.claim import attempt_failed, backoff, outbox_claim, release
from customers.services.outbox.mime import envelope_address, message_mime
from customers.services.outbox.render import (
    ROW_FIELDS,
    RenderCache,
    RenderedEmail,
    django_email,
    preload,
    render_row,
    row_is_marketing,
    row_recipient,
)
from customers.services.outbox.smtp import OutboxConnectionError, smtp_connection_lost, smtp_send

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    released: int = 0

    def add(self, other: BatchResult) -> None:
        for name in ("claimed", "sent", "retried", "failed", "suppressed", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Pacer:
    """Per-process send rate limit (EMAIL_SEND_RATE_PER_SECOND; 0 means as fast as possible)."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def wait(self) -> None:
        rate = settings.EMAIL_SEND_RATE_PER_SECOND
        if rate <= 0:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = max(self.next_at, now) + 1.0 / rate


pacer = Pacer()


class SentMarker:
    """Marks accepted messages sent, one autocommit UPDATE each, the moment SMTP says 250.

    On PostgreSQL the UPDATE is sent without waiting for its answer (libpq's asynchronous
    query), so the database applies it while the next message's MAIL, RCPT and DATA go
    out; its answer is collected (wait) before that next message's body is sent, which is
    the moment the server could accept it. So at any instant at most one accepted message
    is not yet marked, as with a blocking UPDATE, and a kill can resend only that one.
    Anything else that uses the connection must call wait() first.

    Each mark is durable (synchronous_commit as the database has it, on) before the next
    message can be accepted: a crash of PostgreSQL itself, not only of this worker, loses
    no mark but the one in flight, so it too repeats at most one email per sender. The WAL
    flush (about half a millisecond here) overlaps the next message's MAIL, RCPT and DATA.
    """

    # One of the two, by database: libpq takes the query as bytes, Django's cursor as str.
    libpq_sql: bytes
    cursor_sql: str

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.postgres = connection.vendor == "postgresql"
        table = Message._meta.db_table
        self.pending = False
        if self.postgres:
            self.pgconn = connection.connection.pgconn
            self.libpq_sql = f"UPDATE {table} SET status = 'sent', sent_at = now(), claimed_at = NULL WHERE id = $1".encode()  # noqa: S608 - table name from the model, value bound
        else:
            self.cursor_sql = f"UPDATE {table} SET status = %s, sent_at = %s, claimed_at = NULL WHERE id = %s"  # noqa: S608

    def mark(self, pk: int) -> None:
        if not self.postgres:
            self.cursor.execute(self.cursor_sql, [Message.Status.SENT, timezone.now(), pk])
            return
        self.wait()
        self.pgconn.send_query_params(self.libpq_sql, [str(pk).encode()])
        self.pending = True

    def wait(self) -> None:
        """Collect the answer of the mark in flight; raise if it failed."""
        if not self.pending:
            return
        self.pending = False
        errors = []
        while (result := self.pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:
                errors.append(result.get_error_message())
        if errors:
            raise DatabaseError(f"marking a message sent failed: {errors[0]}")

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.cursor.close()


@dataclass
class Prepared:
    """A message ready for the wire, or the fault that stopped it being rendered."""

    row: dict
    rendered: RenderedEmail | None = None
    data: bytes | None = None
    rcpt: str = ""
    error: Exception | None = None


class BatchSend:
    """One claimed batch, sent over one SMTP connection, in named steps.

    While the server digests one message's body, the next message is rendered (the SMTP
    exchange's `meanwhile` hook), so rendering costs no wall time on a real connection.
    """

    def __init__(self, rows: list[dict], result: BatchResult) -> None:
        self.rows = rows
        self.result = result
        self.started = time.monotonic()
        # Stop well inside the lease so no other sender ever takes over a batch in hand.
        self.budget = settings.OUTBOX_LEASE_SECONDS / 2
        self.render_cache = RenderCache()
        self.from_header = sanitize_address(settings.DEFAULT_FROM_EMAIL, "utf-8")
        self.envelope_from = envelope_address(self.from_header)
        self.upcoming: Prepared | None = None
        self.marker: SentMarker | None = None

    def run(self) -> None:
        self.backend = self.open()
        # With Django's SMTP backend, its open smtplib connection sends bytes built here;
        # any other backend (locmem in tests, console) gets Django email objects.
        self.smtp = self.backend.connection if isinstance(self.backend, SMTPEmailBackend) else None
        try:
            preload(self.rows, self.render_cache)
            self.marker = SentMarker()
            if self.smtp is not None:
                self.smtp.ehlo_or_helo_if_needed()
            self.upcoming = self.prepare(0)
            for index in range(len(self.rows)):
                if not self.send_one(index):
                    break
        finally:
            self.close()

    def open(self):
        backend = get_connection()
        try:
            backend.open()
        except (OSError, smtplib.SMTPException) as exc:
            release([r["id"] for r in self.rows], error=f"SMTP connection: {exc}", delay=backoff(1))
            raise OutboxConnectionError(str(exc)) from exc
        return backend

    def prepare(self, index: int) -> Prepared | None:
        if index >= len(self.rows):
            return None
        row = self.rows[index]
        prepared = Prepared(row=row)
        try:
            prepared.rendered = render_row(row, self.render_cache)
            if self.smtp is not None:
                prepared.rcpt = envelope_address(row_recipient(row))
                prepared.data = message_mime(
                    rendered=prepared.rendered, from_header=self.from_header, to=row_recipient(row)
                )
        except Exception as exc:  # a template or data fault: recorded against this message
            logger.exception("could not render message %s", row["id"])
            prepared.error = exc
        return prepared

    def send_one(self, index: int) -> bool:
        """Send rows[index]; False when the batch must stop here (its time is up)."""
        assert self.marker is not None
        current, self.upcoming = self.upcoming, None
        assert current is not None
        # What this send's log lines (a failure, a render fault) are about.
        log_context(order=current.row["order_reference"] or None, launch=current.row["launch_id"])

        def prepare_next() -> None:
            self.upcoming = self.prepare(index + 1)

        if time.monotonic() - self.started > self.budget:
            self.marker.wait()
            self.hand_back(index)
            return False
        if current.error is not None:
            self.marker.wait()
            self.attempt_failed(current, f"render: {current.error!r}")
            prepare_next()
            return True
        pacer.wait()
        try:
            if self.smtp is not None:
                smtp_send(
                    self.smtp,
                    sender=self.envelope_from,
                    rcpt=current.rcpt,
                    data=current.data or b"",
                    before_body=self.marker.wait,
                    meanwhile=prepare_next,
                )
            else:
                self.marker.wait()
                assert current.rendered is not None
                self.backend.send_messages([django_email(current.rendered, row_recipient(current.row))])
        except (smtplib.SMTPException, OSError) as exc:
            self.marker.wait()
            self.attempt_failed(current, f"SMTP: {exc}")
            if smtp_connection_lost(exc):
                self.hand_back(index + 1, delay=backoff(1))
                raise OutboxConnectionError(str(exc)) from exc
            if self.upcoming is None:
                prepare_next()
            return True
        self.marker.mark(current.row["id"])
        self.result.sent += 1
        EMAILS.labels(outcome="sent").inc()
        if self.upcoming is None:  # not prepared while sending (a non-SMTP backend)
            self.marker.wait()
            prepare_next()
        return True

    def attempt_failed(self, prepared: Prepared, error: str) -> None:
        status = attempt_failed(prepared.row, error)
        self.result.failed += status == Message.Status.FAILED
        self.result.retried += status != Message.Status.FAILED
        EMAILS.labels(outcome="failed" if status == Message.Status.FAILED else "retried").inc()

    def hand_back(self, start: int, delay=None) -> None:
        rest = [r["id"] for r in self.rows[start:]]
        release(rest, delay=delay)
        self.result.released += len(rest)

    def close(self) -> None:
        try:
            if self.marker is not None:
                self.marker.close()
        finally:
            try:
                self.backend.close()
            except Exception:  # closing a broken connection must not hide the real error
                logger.debug("SMTP close failed", exc_info=True)


def outbox_send_batch(*, limit: int | None = None) -> BatchResult:
    """Claim one batch and send it over one SMTP connection.

    Raises OutboxConnectionError when the server cannot be reached (the batch is handed
    back untouched) so the task can back off.
    """
    result = BatchResult()
    ids = outbox_claim(limit=limit or settings.OUTBOX_BATCH_SIZE)
    result.claimed = len(ids)
    if not ids:
        return result
    rows = list(Message.objects.filter(pk__in=ids).order_by("id").values(*ROW_FIELDS))
    opted_out = {r["id"] for r in rows if r["customer__marketing_opt_out"] and row_is_marketing(r)}
    if opted_out:
        Message.objects.filter(pk__in=opted_out).update(status=Message.Status.SUPPRESSED, claimed_at=None)
        result.suppressed = len(opted_out)
        rows = [r for r in rows if r["id"] not in opted_out]
    if rows:
        BatchSend(rows, result).run()
    return result


def outbox_drain(*, time_budget: float | None = None) -> BatchResult:
    """Send batches until the outbox has nothing due or the time budget is spent."""
    time_budget = settings.OUTBOX_DRAIN_SECONDS if time_budget is None else time_budget
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    while True:
        batch = outbox_send_batch()
        total.add(batch)
        if batch.claimed == 0 or time.monotonic() >= deadline:
            return total
