"""The advisory locks that order admission and allocation per launch.

Every admission holds its launch's ADMISSION lock shared for its short transaction. The
allocator takes the same lock exclusively for an instant to read a watermark: once it
holds it, every sequence number at or below the watermark belongs to a committed (or
rolled back) order, so it never serves a later order while an earlier one is still
being written. The ALLOCATOR lock makes the allocator a single writer per launch; a
cancellation takes it too, so it never races an allocator batch over the same order.

Transaction-scoped (pg_advisory_xact_lock*): released at commit or rollback, never
leaked by a crashed process. The embedded SQLite default has one writer anyway.
"""

from django.db import connection

ADMISSION_LOCK = 7301
ALLOCATOR_LOCK = 7302


def _lock(sql: str, lock_class: int, launch_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, [lock_class, launch_id])


def admission_lock_shared(*, launch_id: int) -> None:
    """Precondition: inside the admission's transaction."""
    _lock("SELECT pg_advisory_xact_lock_shared(%s, %s)", ADMISSION_LOCK, launch_id)


def admission_lock_exclusive(*, launch_id: int) -> None:
    """Waits for the admissions in flight. Precondition: inside a transaction (held to its end)."""
    _lock("SELECT pg_advisory_xact_lock(%s, %s)", ADMISSION_LOCK, launch_id)


def allocator_lock(*, launch_id: int) -> None:
    """Precondition: inside the transaction that allocates or cancels."""
    _lock("SELECT pg_advisory_xact_lock(%s, %s)", ALLOCATOR_LOCK, launch_id)
