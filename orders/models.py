from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Order(models.Model):
    """An upgrade order. Its primary key is its sequence number: first come, first served.

    The database assigns the sequence at insert, and the allocator serves each pool
    (launch, SKU, location) in sequence order.
    """

    class Channel(models.TextChoices):
        ONLINE = "online", "Online"
        PARTNER = "partner", "Partner"
        STORE = "store", "In store"

    class Fulfilment(models.TextChoices):
        DELIVERY = "delivery", "Home delivery"
        COLLECT = "collect", "Collect in store"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        ALLOCATED = "allocated", "Allocated"
        WAITLISTED = "waitlisted", "Waitlisted"
        FULFILLED = "fulfilled", "Fulfilled"
        CANCELLED = "cancelled", "Cancelled"

    sequence = models.BigAutoField(primary_key=True)
    # Every index on this table is paid by every admission and every allocator UPDATE,
    # so foreign keys that another index already leads with (or that are only read when
    # a SKU or location is deleted) carry none; `reference` is unique through a
    # constraint, which spares PostgreSQL's extra LIKE index.
    reference = models.CharField(max_length=16)
    launch = models.ForeignKey(
        "inventory.Launch", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="orders")
    # Which of the customer's allowed orders this is (1..launch limit); with the unique
    # constraint below it makes "one order per customer" a database rule.
    slot = models.PositiveSmallIntegerField(default=1)
    sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT, related_name="orders", db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    fulfilment = models.CharField(max_length=16, choices=Fulfilment.choices)
    # Indexed by order_store_recent, which leads with it.
    store = models.ForeignKey(
        "stores.Store",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        db_index=False,
    )
    # The pool the order is served from: the online pool for delivery, the store for collect.
    pool = models.ForeignKey(
        "inventory.Location", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    partner = models.ForeignKey(
        "stores.Partner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        db_index=False,
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Place in the pool's waitlist, given by the allocator when the order has to wait.
    wait_number = models.PositiveIntegerField(null=True, blank=True)
    # A fair start's draw (orders.services.fair_start): a random number from the OS's
    # CSPRNG, recorded at admission for orders admitted during the opening draw; such
    # orders are served in draw order before everyone admitted later. Null: not in a draw.
    fair_draw = models.BigIntegerField(null=True, blank=True)
    # What the allocator told the order when it had to wait, kept so the fairness audit
    # can check from the database alone that the place told was right at that moment.
    waitlisted_at = models.DateTimeField(null=True, blank=True)
    told_position = models.PositiveIntegerField(null=True, blank=True)
    idempotency_scope = models.CharField(max_length=64, blank=True)
    # Null, not "", means "no key": the unique constraint below only covers real keys.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    allocated_at = models.DateTimeField(null=True, blank=True)
    collect_by = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Why it was cancelled, as staff (or the collection deadline) put it; shown on its page.
    cancel_reason = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="order_reference_unique"),
            models.UniqueConstraint(
                fields=["launch", "customer", "slot"], name="order_one_per_customer_slot"
            ),
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_per_scope",
            ),
            models.UniqueConstraint(
                fields=["pool", "sku", "wait_number"],
                condition=Q(wait_number__isnull=False),
                name="order_wait_number_unique_in_pool",
            ),
            models.CheckConstraint(
                condition=(Q(fulfilment="collect", store__isnull=False))
                | (Q(fulfilment="delivery", store__isnull=True)),
                name="order_store_iff_collect",
            ),
            models.CheckConstraint(condition=Q(slot__gte=1), name="order_slot_positive"),
        ]
        indexes = [
            # The allocator reads the queue of a launch in sequence order...
            models.Index(fields=["launch", "sequence"], condition=Q(status="queued"), name="order_queued"),
            # ...and a queued order's position counts the queued orders ahead in its pool.
            models.Index(
                fields=["launch", "sku", "pool", "sequence"],
                condition=Q(status="queued"),
                name="order_queued_in_pool",
            ),
            models.Index(
                fields=["launch", "sku", "pool", "wait_number"],
                condition=Q(status="waitlisted"),
                name="order_waitlisted",
            ),
            models.Index(fields=["partner", "launch", "status"], name="order_partner_list"),
            # A store's orders ready to hand over: a few dozen rows even when thousands of
            # collect orders wait there, so the store page's poll costs the same at any size.
            models.Index(
                fields=["store", "launch", "sequence"],
                condition=Q(status="allocated", fulfilment="collect"),
                name="order_ready_to_collect",
            ),
            # A store's orders newest first (the store's orders page, the office's store
            # filter); it replaces the plain store index, so admission pays nothing more.
            models.Index(fields=["store", "sequence"], name="order_store_recent"),
        ]

    def __str__(self) -> str:
        return self.reference


class PoolState(models.Model):
    """The allocator's bookkeeping for one pool, so queue positions are cheap to read.

    Written only by the allocator under its lock. served_through is the highest
    wait_number that has been given a unit; waitlisted_total the highest handed out.
    """

    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="pools")
    sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT)
    pool = models.ForeignKey("inventory.Location", on_delete=models.PROTECT)
    waitlisted_total = models.PositiveIntegerField(default=0)
    served_through = models.PositiveIntegerField(default=0)
    waiting = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["launch", "sku", "pool"], name="pool_state_one_per_pool"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.pool_id}: {self.waiting} waiting"


class Ticket(models.Model):
    """A walk-in customer's place in a store's queue on launch day."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SERVED = "served", "Served"
        NO_SALE = "no_sale", "Left without a unit"
        CANCELLED = "cancelled", "Cancelled"

    launch = models.ForeignKey("inventory.Launch", on_delete=models.PROTECT, related_name="tickets")
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="tickets")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT, null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, null=True, blank=True, related_name="tickets"
    )
    issued_at = models.DateTimeField(default=timezone.now)
    served_at = models.DateTimeField(null=True, blank=True)
    served_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["launch", "store", "number"], name="ticket_number_per_store"),
        ]
        indexes = [
            models.Index(
                fields=["launch", "store", "number"], condition=Q(status="waiting"), name="ticket_waiting"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.store.code} #{self.number}"


class ClaimWindow(models.Model):
    """Units freed in a pool after its waitlist was served, held for the customers told.

    Opening a window reserves its units in the ledger (a HOLD movement), so available to
    everyone else is on_hand - reserved as everywhere; each claim turns one held unit into
    an allocated order (`claimed` rises under a conditional UPDATE, never past `units`);
    closing returns units - claimed to the pool (a RELEASE movement). So at every moment
    a pool's reserved = its allocated orders + units - claimed of its open windows.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="claim_windows")
    sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT, related_name="+")
    pool = models.ForeignKey("inventory.Location", on_delete=models.PROTECT, related_name="+")
    units = models.PositiveIntegerField(default=0)
    claimed = models.PositiveIntegerField(default=0)
    notified = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    closes_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(claimed__lte=models.F("units")), name="claim_window_no_oversell"
            ),
            models.CheckConstraint(
                condition=Q(units__lte=models.F("notified")), name="claim_window_units_told"
            ),
        ]
        indexes = [
            models.Index(fields=["closes_at"], condition=Q(status="open"), name="claim_window_open"),
            models.Index(fields=["launch", "sku", "pool"], name="claim_window_pool"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.pool_id}: {self.claimed}/{self.units} claimed"

    @property
    def held(self) -> int:
        return self.units - self.claimed if self.status == self.Status.OPEN else 0


class StockNotice(models.Model):
    """One customer told about one window's units, in registration order (rank).

    Unique per launch and customer: whoever was told once is never told again, so a
    repeated trigger, or the next batch after a window closes, reaches only new people.
    """

    window = models.ForeignKey(ClaimWindow, on_delete=models.CASCADE, related_name="notices")
    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Place in the batch: 1 for the earliest registration.
    rank = models.PositiveIntegerField()
    order = models.OneToOneField(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="stock_notice"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["launch", "customer"], name="stock_notice_once_per_customer"),
            models.UniqueConstraint(fields=["window", "rank"], name="stock_notice_rank_in_window"),
        ]

    def __str__(self) -> str:
        return f"notice {self.pk} to {self.customer_id}"


class Rehearsal(models.Model):
    """A simulate_launch run: what was asked, how far it got, and its report once done."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    launch = models.ForeignKey("inventory.Launch", on_delete=models.CASCADE, related_name="rehearsals")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict)
    progress = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    report_html = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rehearsal {self.pk} of {self.launch_id} ({self.status})"
