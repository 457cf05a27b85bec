"""A fair start: the opening seconds of a launch are one moment, ordered by a draw.

With a launch's fair_start_seconds at N > 0, every order admitted in [opens_at,
opens_at + N) gets a random draw at admission (the OS's CSPRNG, recorded on the order),
and counts as arriving at the same instant as the others in the draw: a customer one
network hop closer to us gains nothing. The allocator serves nobody until the draw has
closed (plus DRAW_GRACE, so admissions that began inside the window have committed),
then serves the draw's orders in draw order, then everyone else first come first
served. Walk-in tickets are not orders and are outside the draw: the store's queue at
the door is its own first come first served.

The order's place while the draw is open is not a number: the API and the status page
say "in the opening draw" (a null position) until the allocator has placed it.
"""

import datetime
import secrets

from django.db.models import QuerySet

from orders.models import Order

# How long after the draw closes the allocator waits before serving it: an admission
# timestamps its order before it takes the admission lock, and the allocator's watermark
# only waits for admissions already holding it.
DRAW_GRACE = datetime.timedelta(seconds=2)
# A draw is a 62-bit number: ties (one in ~10^18 per pair) fall back to sequence order.
_DRAW_BITS = 62


def draw_closes_at(*, opens_at: datetime.datetime, fair_start_seconds: int) -> datetime.datetime | None:
    """When the opening draw stops taking orders, or None if the launch has no fair start."""
    if not fair_start_seconds:
        return None
    return opens_at + datetime.timedelta(seconds=fair_start_seconds)


def fair_draw_new(
    *, opens_at: datetime.datetime, fair_start_seconds: int, now: datetime.datetime
) -> int | None:
    """The draw for an order admitted at `now`: a CSPRNG number inside the window, else None."""
    closes = draw_closes_at(opens_at=opens_at, fair_start_seconds=fair_start_seconds)
    if closes is None or not (opens_at <= now < closes):
        return None
    return secrets.randbits(_DRAW_BITS)


def draw_holds_allocation(
    *, opens_at: datetime.datetime, fair_start_seconds: int, now: datetime.datetime
) -> bool:
    """True while the allocator must serve nobody: the draw is open or just closed."""
    closes = draw_closes_at(opens_at=opens_at, fair_start_seconds=fair_start_seconds)
    return closes is not None and opens_at <= now < closes + DRAW_GRACE


def drawn_queue(*, launch_id: int, watermark: int) -> QuerySet[Order]:
    """The launch's queued orders from the draw, in draw order (the allocator's first turn)."""
    return Order.objects.filter(
        launch_id=launch_id, status=Order.Status.QUEUED, fair_draw__isnull=False, sequence__lte=watermark
    ).order_by("fair_draw", "sequence")
