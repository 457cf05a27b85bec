"""A fair start: the opening seconds of a launch are one moment, ordered by a draw.

With a launch's fair_start_seconds at N > 0, every order admitted in [opens_at,
opens_at + N) gets a random draw at admission (the OS's CSPRNG, recorded on the order),
and counts as arriving at the same instant as the others in the draw: a customer one
network hop closer to us gains nothing. The allocator serves nobody until the draw has
closed, then serves the draw's orders in draw order, then everyone else first come first
served. Walk-in tickets are not orders and are outside the draw: the store's queue at
the door is its own first come first served.

Who is in the draw is decided by the database's clock, inside the INSERT, while the
admission holds its launch's admission lock shared (orders.services.locks): Python
makes a draw for every order of a launch with a fair start, and the statement keeps it
only if `clock_timestamp()` is before the draw's close then (DRAW_KEPT_SQL). The allocator
reads the same clock, before it takes its watermark, to decide that the draw has closed
(orders.services.allocation.admission_watermark). No grace is needed after the close:

- an admission whose INSERT read the clock before the close already held the admission
  lock then; the allocator saw the clock past the close after that, and only then asks
  for the lock exclusively, so that admission has either committed (and its row is at or
  below the watermark the allocator then reads) or still holds the lock, and the
  allocator waits for its commit before reading the watermark. Either way the draw's
  order is in the allocator's first turn, however long the admission stalled;
- an admission whose INSERT read the clock after the close is not in the draw, and is
  served first come first served by its sequence, however early it began in Python.

So a stall (a GC pause, a slow disk) before or inside an admission can move an order out
of the draw, never serve a drawn order after orders that came after the draw. It takes
one clock: the database server's, which both sides read (Python's clock in the web
process and the allocator's worker are not it). The embedded SQLite demo has no
admission lock and one writer; there the draw is decided by Python's clock at the
insert, inside its transaction.

An order's created_at is still Python's clock when the request was checked: near the
close, a stalled admission may carry a created_at inside the window and no draw.

The order's place while the draw is open is not a number: the API and the status page
say "in the opening draw" (a null position) until the allocator has placed it.
"""

import datetime
import secrets

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from orders.models import Order

# A draw is a 62-bit number: ties (one in ~10^18 per pair) fall back to sequence order.
_DRAW_BITS = 62

# The value the INSERT writes to fair_draw: the draw Python made, kept only if the
# database's clock, read by the statement itself (after the admission lock is held), is
# before the draw closes. Placeholders: the close, the draw. The opening is not tested
# here: admission refuses an order before it (order_route), and an order Python let in a
# hair before the database's clock reached the opening arrived at the opening moment.
DRAW_KEPT_SQL = "CASE WHEN clock_timestamp() < {closes}::timestamptz THEN {draw}::bigint END"


def draw_closes_at(*, opens_at: datetime.datetime, fair_start_seconds: int) -> datetime.datetime | None:
    """When the opening draw stops taking orders, or None if the launch has no fair start."""
    if not fair_start_seconds:
        return None
    return opens_at + datetime.timedelta(seconds=fair_start_seconds)


def fair_draw_new(*, fair_start_seconds: int) -> int | None:
    """A draw for an order of a launch with a fair start (a CSPRNG number), else None.

    Only a candidate: the INSERT keeps it if the order is written inside the window
    (DRAW_KEPT_SQL, or fair_draw_kept where there is no such statement).
    """
    return secrets.randbits(_DRAW_BITS) if fair_start_seconds else None


def fair_draw_kept(
    *, draw: int | None, opens_at: datetime.datetime, fair_start_seconds: int, now: datetime.datetime
) -> int | None:
    """DRAW_KEPT_SQL in Python, for the SQLite demo: the draw if `now` is before the close."""
    closes = draw_closes_at(opens_at=opens_at, fair_start_seconds=fair_start_seconds)
    return draw if closes is not None and now < closes else None


def database_clock() -> datetime.datetime:
    """The database server's clock now (clock_timestamp(), not the transaction's start):
    the clock DRAW_KEPT_SQL reads. Python's on SQLite."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def draw_holds_allocation(
    *, opens_at: datetime.datetime, fair_start_seconds: int, now: datetime.datetime
) -> bool:
    """True while the allocator must serve nobody: the draw has not closed at `now`, the
    database's clock (database_clock) read before the allocator's watermark. The same
    test as DRAW_KEPT_SQL's, so whatever the allocator serves after it has seen the
    close, no order written since can join the draw."""
    closes = draw_closes_at(opens_at=opens_at, fair_start_seconds=fair_start_seconds)
    return closes is not None and now < closes


def drawn_queue(*, launch_id: int, watermark: int) -> QuerySet[Order]:
    """The launch's queued orders from the draw, in draw order (the allocator's first turn)."""
    return Order.objects.filter(
        launch_id=launch_id, status=Order.Status.QUEUED, fair_draw__isnull=False, sequence__lte=watermark
    ).order_by("fair_draw", "sequence")
