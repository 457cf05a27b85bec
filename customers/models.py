import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Customer(models.Model):
    """An existing customer of the operator, known by account number."""

    class ContractStatus(models.TextChoices):
        ACTIVE = "active", "Active contract"
        UPGRADE_DUE = "upgrade_due", "Due an upgrade"
        SUSPENDED = "suspended", "Suspended"
        ENDED = "ended", "Ended"

    account_number = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(db_index=True)
    phone = models.CharField(max_length=32, blank=True)
    postcode = models.CharField(max_length=10)
    current_device = models.CharField(max_length=64, blank=True)
    contract_status = models.CharField(
        max_length=16, choices=ContractStatus.choices, default=ContractStatus.ACTIVE
    )
    marketing_opt_out = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.account_number} {self.name}"

    @property
    def may_upgrade(self) -> bool:
        return self.contract_status in (
            self.ContractStatus.ACTIVE,
            self.ContractStatus.UPGRADE_DUE,
        )


class UpgradeRegistration(models.Model):
    """A customer's registration of interest in a launch, made before its window opens."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="registrations")
    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="registrations")
    preferred_sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT)
    # Null means home delivery.
    preferred_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="registrations"
    )
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["launch", "customer"], name="registration_one_per_launch"),
        ]
        indexes = [
            models.Index(fields=["launch", "preferred_store", "preferred_sku"], name="registration_demand"),
            # "Registrations without an order" (the demand report, intake's plan) in customer
            # order with the preference beside it, so PostgreSQL merges it with the orders'
            # customers without reading a registration: 170-230 ms at 400,000 registrations
            # instead of a 390-750 ms hash of every order (bench: the office recount).
            models.Index(
                fields=["launch", "customer", "preferred_store", "preferred_sku"],
                name="registration_by_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} for {self.launch}"


class Campaign(models.Model):
    """A head-office mailing to a chosen audience of a launch (for example an apology)."""

    class Audience(models.TextChoices):
        WAITLISTED = "waitlisted", "Every waitlisted customer"
        REGISTERED_WITHOUT_ORDER = "registered_without_order", "Registered customers without an order"

    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="campaigns")
    kind = models.CharField(max_length=32)
    audience = models.CharField(max_length=32, choices=Audience.choices)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # True when the launch's auto_apology switch started it as the launch sold out.
    automatic = models.BooleanField(default=False)
    # Messages this campaign put in the outbox (customers already told are not counted).
    queued = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["launch", "kind", "audience"], name="campaign_once_per_audience"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.audience} of {self.launch}"


class Message(models.Model):
    """The outbox. Written in the same transaction as the event that causes it.

    dedupe_key is unique, so one event can never produce two messages; message_id is
    stable, so a copy resent after a worker was killed mid-send can be dropped by mail
    systems.
    """

    class Kind(models.TextChoices):
        ORDER_RECEIVED = "order_received", "Order received"
        ALLOCATED = "allocated", "Your phone is reserved"
        READY_TO_COLLECT = "ready_to_collect", "Ready to collect"
        COLLECTION_EXPIRED = "collection_expired", "Collection deadline passed"
        ORDER_CANCELLED = "order_cancelled", "Order cancelled"
        APOLOGY = "apology", "Apology"
        BACK_IN_STOCK = "back_in_stock", "Back in stock"
        # Freed units held for this customer's claim window, with its signed claim link.
        STOCK_NOTICE = "stock_notice", "Units held for you"
        # To a partner's contact (to_email), not a customer.
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled"

    # Marketing-type mail honours the customer's unsubscribe; order mail always goes. An
    # apology with no order (to a registered customer who never ordered) is marketing-type
    # too: see is_marketing.
    MARKETING_KINDS = frozenset({Kind.BACK_IN_STOCK, Kind.STOCK_NOTICE})
    # Mail to partners' contacts (no customer; to_email), about their integration.
    PARTNER_KINDS = frozenset({Kind.WEBHOOK_DISABLED})

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        # Claimed by a sender until claimed_at + OUTBOX_LEASE_SECONDS. A row still sending
        # after its lease was cut by a killed worker: it is sent again, with the same
        # Message-ID, and it is the only kind of message that can ever arrive twice.
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed (unsubscribed)"

    # Every index here is paid by every row the allocator writes (one per order), so:
    # dedupe_key is unique through a constraint, which spares PostgreSQL's extra LIKE index
    # (nothing searches keys by prefix); customer and campaign carry no index of their own
    # because message_customer and message_campaign_status lead with them; launch carries
    # none because nothing reads messages by it (only deleting a launch would, and
    # launches with orders are never deleted); an order's messages are found through its
    # customer (message_customer), a handful of rows.
    kind = models.CharField(max_length=32, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200)
    # Null only for mail to someone who is not a customer (a partner's contact), sent to
    # to_email instead.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="messages", db_index=False, null=True, blank=True
    )
    # A default in the database too: the set-based INSERTs of customer mail leave it out.
    to_email = models.EmailField(blank=True, default="", db_default="")
    # The order the message is about, by reference: the outbox names orders but does not
    # point at them (orders sit above customers), and what the email says about the order
    # travels in `context` (customers.services.outbox.facts).
    order_reference = models.CharField(max_length=16, blank=True, default="")
    launch = models.ForeignKey(
        "inventory.Launch",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="messages",
        db_index=False,
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages", db_index=False
    )
    context = models.JSONField(default=dict, blank=True)
    # A copy staff asked for (customers.services.outbox.resend): its own row, key and
    # Message-ID, pointing at the message it repeats. No index: read from the copy only.
    resend_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="resends", db_index=False
    )
    message_id = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When a sender claimed the row (status sending); the lease runs from here.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Backoff after a failed attempt: a pending row is not claimed before this (null: now).
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # ON CONFLICT (dedupe_key) in the allocator and the campaigns relies on it.
            models.UniqueConstraint(fields=["dedupe_key"], name="message_dedupe_key_unique"),
        ]
        indexes = [
            models.Index(fields=["id"], condition=Q(status="pending"), name="message_pending"),
            models.Index(fields=["customer", "created_at"], name="message_customer"),
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="message_sending"),
            # Only campaign mail: the allocator's order mail (no campaign) stays out of it.
            models.Index(
                fields=["campaign", "status"],
                condition=Q(campaign__isnull=False),
                name="message_campaign_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.customer_id} ({self.status})"

    @property
    def is_marketing(self) -> bool:
        return self.kind in self.MARKETING_KINDS or (
            self.kind == self.Kind.APOLOGY and not self.order_reference
        )
