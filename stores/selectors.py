"""Reads of the stores app: who may see which store (shared by views, the API and
templates), and the webhook endpoints and their delivery log."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Min, QuerySet

from config.metrics import Backlog
from stores.models import StaffMembership, Store, WebhookDelivery, WebhookEndpoint


def _signed_in(user: AbstractBaseUser | AnonymousUser) -> User | None:
    """The User behind a request's user, or None when nobody is signed in."""
    if not user.is_authenticated:
        return None
    # The project keeps Django's default AUTH_USER_MODEL, so the authentication backend
    # only ever signs in a User: an authenticated request.user is always one.
    assert isinstance(user, User)
    return user


def user_is_head_office(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user works for head office. Remembered on the user object, which lives
    for one request: the second-factor check, the store check and the templates all ask,
    and a store page polled every two seconds should ask the database once."""
    signed_in = _signed_in(user)
    if signed_in is None:
        return False
    if signed_in.is_superuser:
        return True
    known = getattr(signed_in, "_launchday_head_office", None)
    if known is None:
        known = StaffMembership.objects.filter(user=signed_in, role=StaffMembership.Role.HEAD_OFFICE).exists()
        signed_in._launchday_head_office = known  # type: ignore[attr-defined]
    return known


def stores_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Store]:
    """Every store for head office; otherwise only the stores the user works in."""
    if user_is_head_office(user=user):
        return Store.objects.all()
    signed_in = _signed_in(user)
    if signed_in is None:
        return Store.objects.none()
    return Store.objects.filter(memberships__user=signed_in).distinct()


def user_may_see_store(*, user: AbstractBaseUser | AnonymousUser, store: Store) -> bool:
    return stores_for_user(user=user).filter(pk=store.pk).exists()


def webhook_endpoints_awaiting_notice() -> QuerySet[WebhookEndpoint]:
    """Endpoints switched off for failing whose partner's contact has not been told yet."""
    return WebhookEndpoint.objects.filter(
        is_enabled=False,
        disabled_reason=WebhookEndpoint.DisabledReason.FAILING,
        notice_queued_at__isnull=True,
    ).select_related("partner")


def webhook_endpoints_for_partner(*, partner_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(partner_id=partner_id).order_by("id")


def webhook_deliveries(
    *, partner_id: int | None = None, endpoint_id: int | None = None
) -> QuerySet[WebhookDelivery]:
    """The delivery log, newest first, with each delivery's event and endpoint."""
    deliveries = WebhookDelivery.objects.select_related("event", "endpoint")
    if partner_id is not None:
        deliveries = deliveries.filter(endpoint__partner_id=partner_id)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    return deliveries.order_by("-id")


def webhook_endpoint_counts(*, endpoint_ids: list[int]) -> dict[int, dict[str, int]]:
    """endpoint id -> {status: deliveries} (head office's page)."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in endpoint_ids}
    rows = (
        WebhookDelivery.objects.filter(endpoint_id__in=endpoint_ids)
        .values_list("endpoint_id", "status")
        .annotate(n=Count("id"))
    )
    for endpoint_id, status, n in rows:
        counts[endpoint_id][status] = n
    return counts


def webhook_backlog() -> Backlog:
    """Webhook deliveries still to make (pending or being sent) and the oldest one's age."""
    waiting = WebhookDelivery.objects.filter(
        status__in=(WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING)
    )
    figures = waiting.aggregate(n=Count("pk"), oldest=Min("created_at"))
    return Backlog(waiting=figures["n"], oldest_at=figures["oldest"])


def webhook_failed_count() -> int:
    """Deliveries given up on (retries spent, or the endpoint gone or switched off)."""
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.FAILED).count()
