"""The rehearsals head office sees: the latest first, without their (large) reports."""

from django.db.models import QuerySet

from orders.models import Rehearsal

SHOWN = 50


def rehearsals_recent(*, limit: int = SHOWN) -> QuerySet[Rehearsal]:
    return (
        Rehearsal.objects.select_related("launch")
        .defer("report_html", "summary")
        .order_by("-created_at")[:limit]
    )
