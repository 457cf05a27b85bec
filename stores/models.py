import datetime
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey
from simple_history.models import HistoricalRecords


class Partner(models.Model):
    """An organisation outside head office: a retail chain running stores, or a supplier."""

    class Kind(models.TextChoices):
        RETAILER = "retailer", "Retail partner"
        SUPPLIER = "supplier", "Supplier"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RETAILER)
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True)
    # Who hears from head office about the partner's integration (a webhook endpoint that
    # was switched off because it kept failing, say).
    contact_email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class PartnerAPIKey(AbstractAPIKey):
    """A hashed, revocable key held by one partner (djangorestframework-api-key)."""

    class Scope(models.TextChoices):
        ORDERS = "orders", "Orders, availability and stock"
        DELIVERIES = "deliveries", "Delivery manifests (suppliers)"
        WEBHOOKS = "webhooks", "Webhook endpoints and their delivery log"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ORDERS)
    # Orders sent with this key that named a known customer with a wrong postcode.
    proof_failures = models.PositiveIntegerField(default=0, help_text="orders refused for a wrong postcode")
    proof_failed_at = models.DateTimeField(null=True, blank=True, help_text="the latest wrong postcode")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
        verbose_name_plural = "partner API keys"

    def scope_fits_partner(self) -> bool:
        """Retail chains hold orders and webhooks keys, suppliers deliveries keys, and nothing else."""
        return self.scope in SCOPES_BY_KIND.get(self.partner.kind, frozenset())

    def clean(self) -> None:
        super().clean()
        if self.partner_id and not self.scope_fits_partner():
            raise ValidationError(
                {"scope": f"A {self.partner.get_kind_display().lower()} cannot hold a {self.scope} key."}
            )

    def save(self, *args, **kwargs) -> None:
        # The last guard, whoever creates the key (admin, command, shell): never a key
        # whose scope the partner's kind does not allow.
        if not self.scope_fits_partner():
            raise ValueError(f"A {self.partner.kind} partner cannot hold a {self.scope} key.")
        super().save(*args, **kwargs)


# Which scopes each kind of partner may hold: retail chains order (and hear about their
# orders through webhooks), suppliers deliver.
SCOPES_BY_KIND: dict[str, frozenset[str]] = {
    Partner.Kind.RETAILER: frozenset({PartnerAPIKey.Scope.ORDERS, PartnerAPIKey.Scope.WEBHOOKS}),
    Partner.Kind.SUPPLIER: frozenset({PartnerAPIKey.Scope.DELIVERIES}),
}


class Store(models.Model):
    """A shop that sells on launch day: the operator's own (no partner) or a partner's."""

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=200)
    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, null=True, blank=True, related_name="stores"
    )
    region = models.CharField(max_length=64, blank=True)
    opens_at_launch = models.TimeField(default=datetime.time(8, 2))
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_partner_store(self) -> bool:
        return self.partner_id is not None


class StaffMembership(models.Model):
    """Who may see what: store staff see one store; head office sees every store."""

    class Role(models.TextChoices):
        STAFF = "staff", "Store staff"
        MANAGER = "manager", "Store manager"
        HEAD_OFFICE = "head_office", "Head office"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    store = models.ForeignKey(
        Store, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STAFF)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "store"], name="membership_one_per_store"),
            # Store roles name a store; the head-office role spans all of them.
            models.CheckConstraint(
                condition=(models.Q(role="head_office", store__isnull=True))
                | (~models.Q(role="head_office") & models.Q(store__isnull=False)),
                name="membership_store_matches_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} {self.store or 'all stores'}"


class WebhookEventType(models.TextChoices):
    """What a partner can hear about (API.md, Webhooks). Published names: add, never rename."""

    ORDER_WAITLISTED = "order.waitlisted", "An order has to wait, with its place in the queue"
    ORDER_ALLOCATED = "order.allocated", "A unit is reserved for an order"
    ORDER_READY_TO_COLLECT = "order.ready_to_collect", "A collect order's unit is held in its store"
    ORDER_COLLECTED = "order.collected", "The customer collected the order"
    ORDER_COLLECTION_EXPIRED = "order.collection_expired", "Not collected in time: the order is cancelled"
    ORDER_CANCELLED = "order.cancelled", "The order is cancelled"
    STORE_STOCK_RECEIVED = "store.stock_received", "A store received a delivery"
    LAUNCH_SOLD_OUT = "launch.sold_out", "The online pool of a SKU has nothing left for new orders"


class WebhookEndpoint(models.Model):
    """Where a partner wants to hear about its orders and stores, and what about.

    The secret signs every request (Standard Webhooks). After a rotation the previous
    secret keeps signing beside the new one until previous_secret_expires_at, so the
    partner can switch verifiers without losing a delivery.
    """

    class DisabledReason(models.TextChoices):
        PARTNER = "partner", "Switched off by the partner"
        HEAD_OFFICE = "head_office", "Switched off by head office"
        GONE = "gone", "The endpoint answered 410 Gone"
        FAILING = "failing", "Every delivery failed for too long"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # A list of WebhookEventType values (JSON, so the embedded SQLite default works too).
    event_types = models.JSONField(default=list)
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # The first failure since the last success; cleared by any success.
    failing_since = models.DateTimeField(null=True, blank=True)
    # When the partner's contact was emailed about a disabling (through the outbox).
    notice_queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["partner_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_enabled=True, disabled_reason="")
                | Q(is_enabled=False) & ~Q(disabled_reason=""),
                name="webhook_endpoint_disabled_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner_id}: {self.url}"


class WebhookEvent(models.Model):
    """One thing that happened, for one partner, written in the transaction that did it.

    Its public_id is the `webhook-id` of every delivery of it (retries and replays too),
    so a partner can drop a copy it has already handled.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="webhook_events", db_index=False
    )
    type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField()
    # What the event is about (an order reference, a store code, a launch slug), for the log.
    subject = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["partner", "occurred_at"], name="webhook_event_partner_time")]

    def __str__(self) -> str:
        return f"{self.type} {self.subject}"

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.public_id)


def webhook_id(public_id: uuid.UUID) -> str:
    """The `webhook-id` header of an event: stable across every attempt and replay."""
    return f"msg_{public_id.hex}"


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint, with its retry schedule.

    pending (due at next_attempt_at) -> sending (claimed by a sender until its lease ends)
    -> delivered, or back to pending for the next retry, or failed for good.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # A replay of an earlier event (same webhook-id), asked for by the partner or head office.
    is_replay = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # Senders claim an endpoint's due deliveries in due order...
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="webhook_delivery_due",
            ),
            # ...and take over a dead sender's rows when their lease has run out.
            models.Index(
                fields=["endpoint", "claimed_at"],
                condition=Q(status="sending"),
                name="webhook_delivery_sending",
            ),
            # The delivery log of an endpoint, newest first.
            models.Index(fields=["endpoint", "id"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as it went: what was sent and what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The first 2 KB of the answer.
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.attempted_at:%H:%M:%S}: {self.status_code or self.error}"
