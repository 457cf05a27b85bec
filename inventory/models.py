from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords


class Product(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class SKU(models.Model):
    code = models.CharField(max_length=32, unique=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="skus")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]
        verbose_name = "SKU"

    def __str__(self) -> str:
        return self.code


class Launch(models.Model):
    """A product launch: its SKUs, its ordering window and its per-customer limit.

    It lives with the catalogue (Product, SKU) because every app hangs off it: orders,
    registrations, campaigns and deliveries all belong to a launch, and the lowest app
    they share is this one, so each can point at it without pointing up.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    per_customer_limit = models.PositiveSmallIntegerField(default=1)
    skus = models.ManyToManyField(SKU, related_name="launches")
    # Head office's switches: apply suggested allocation plans at intake without review,
    # and start the apology campaign by itself when the launch sells out.
    auto_apply_plans = models.BooleanField(default=False)
    auto_apology = models.BooleanField(default=False)
    collect_hold_days = models.PositiveSmallIntegerField(default=3)
    # Stock notices (orders.services.notices): units freed after a pool's waitlist is served
    # are offered to at most free x notice_factor registered customers without an order, and
    # held for them for claim_window_minutes. A factor of 0 turns the notices off.
    # Defaults in the database too: the bench's set-based INSERTs of launches leave them out.
    notice_factor = models.DecimalField(
        max_digits=4, decimal_places=2, default=Decimal("1.5"), db_default=Decimal("1.5")
    )
    claim_window_minutes = models.PositiveIntegerField(default=120, db_default=120)
    # A fair start: orders admitted in the first N seconds after opening count as
    # arriving at once and are served in the order of a random draw, then everyone
    # else first come first served. 0 is off. db_default so raw inserts (bench) need not name it.
    fair_start_seconds = models.PositiveIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(closes_at__gt=models.F("opens_at")), name="launch_window_ordered"
            ),
            models.CheckConstraint(condition=Q(per_customer_limit__gte=1), name="launch_limit_positive"),
            models.CheckConstraint(
                condition=Q(notice_factor__gte=0, notice_factor__lte=10), name="launch_notice_factor_range"
            ),
            models.CheckConstraint(
                condition=Q(claim_window_minutes__gte=1, claim_window_minutes__lte=7 * 24 * 60),
                name="launch_claim_window_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_open_at(self, moment) -> bool:
        return self.opens_at <= moment < self.closes_at

    @property
    def is_open(self) -> bool:
        return self.is_open_at(timezone.now())


class Location(models.Model):
    """Where units are: the central warehouse, the online pool, or one store."""

    class Kind(models.TextChoices):
        CENTRAL = "central", "Central warehouse"
        ONLINE = "online", "Online pool"
        STORE = "store", "Store"

    code = models.CharField(max_length=16, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    store = models.OneToOneField(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="location"
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="store", store__isnull=False)) | (~Q(kind="store") & Q(store__isnull=True)),
                name="location_store_iff_store_kind",
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=~Q(kind="store"), name="location_one_central_one_online"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Stock(models.Model):
    """Units of one SKU at one location. Kept in step with the StockMovement ledger.

    on_hand: physically there. reserved: of those, allocated to orders not yet handed
    over. in_transit: sent here and not yet received. available = on_hand - reserved.
    """

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="stock")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    in_transit = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["location", "sku"], name="stock_one_row_per_location_sku"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_not_negative"),
            models.CheckConstraint(condition=Q(in_transit__gte=0), name="stock_in_transit_not_negative"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_within_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} at {self.location}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockMovement(models.Model):
    """The ledger. Append-only: every change to a Stock row is one of these.

    Each delta applies to the matching Stock field, so for every location and SKU
    Stock.on_hand == sum(on_hand_delta), and likewise for reserved and in_transit.
    """

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt from supplier"
        TRANSFER_OUT = "transfer_out", "Transfer out"
        TRANSFER_IN = "transfer_in", "Transfer in (in transit)"
        STORE_RECEIPT = "store_receipt", "Received at store"
        ALLOCATION = "allocation", "Allocated to orders"
        RELEASE = "release", "Allocation released"
        # Freed units held for the customers told about them (a claim window): reserved, so
        # nobody else is allocated or sold them; what is not claimed is RELEASEd.
        HOLD = "hold", "Held for notified customers"
        SALE = "sale", "Walk-in sale"
        COLLECTION = "collection", "Collected by customer"
        DISPATCH = "dispatch", "Dispatched for home delivery"
        ADJUSTMENT = "adjustment", "Adjustment (damage, loss, count)"
        RETURN = "return", "Return"

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="movements")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    in_transit_delta = models.IntegerField(default=0)
    reason = models.CharField(max_length=255, blank=True)
    reference = models.CharField(max_length=128, blank=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["location", "sku"], name="movement_location_sku")]

    def __str__(self) -> str:
        return f"{self.kind} {self.sku} at {self.location}"


class Delivery(models.Model):
    """A supplier delivery: announced by manifest, received at the central warehouse."""

    class Status(models.TextChoices):
        ANNOUNCED = "announced", "Announced"
        RECEIVED = "received", "Received"
        DISTRIBUTED = "distributed", "Distributed"
        CANCELLED = "cancelled", "Cancelled"

    reference = models.CharField(max_length=64, unique=True)
    launch = models.ForeignKey(
        Launch, on_delete=models.PROTECT, related_name="deliveries", null=True, blank=True
    )
    supplier = models.ForeignKey(
        "stores.Partner", on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    expected_on = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ANNOUNCED)
    source = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    distributed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["expected_on", "reference"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return self.reference


class DeliveryLine(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    # What head office asked the supplier for: the shortfall is requested - quantity.
    requested_quantity = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "sku"], name="delivery_line_one_per_sku"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery} {self.sku} x{self.quantity}"


class AllocationPlan(models.Model):
    """How one delivery is split between the online pool and the stores."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPROVED = "approved", "Approved"
        APPLIED = "applied", "Applied"

    delivery = models.OneToOneField(Delivery, on_delete=models.CASCADE, related_name="plan")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    partner_share_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    minimum_per_store = models.PositiveIntegerField(default=0)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Plan for {self.delivery}"


class AllocationPlanLine(models.Model):
    plan = models.ForeignKey(AllocationPlan, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT)
    location = models.ForeignKey(Location, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(default=0)
    suggested_quantity = models.PositiveIntegerField(default=0)
    # The demand the suggestion was based on, kept so head office can see why.
    demand_waitlisted = models.PositiveIntegerField(default=0)
    demand_registered = models.PositiveIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "sku", "location"], name="plan_line_one_per_sku_location"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} {self.sku} {self.location}: {self.quantity}"


class ReceiptOverCount(models.Model):
    """A store counted more units of a SKU than its delivery sent: held for head office.

    The receipt itself is capped at what was sent (the ledger's STORE_RECEIPT); the excess
    moves no stock until a second person, head office, approves it, and then only as a
    ledger ADJUSTMENT made by the approver. This row is the claim and its decision, not
    stock: the ledger stays the only record of stock.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for head office"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, related_name="over_counts")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="over_counts")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT)
    sent = models.PositiveIntegerField()
    counted = models.PositiveIntegerField()
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reported_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reported_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "location", "sku"], name="over_count_one_per_delivery_store_sku"
            ),
            models.CheckConstraint(condition=Q(counted__gt=F("sent")), name="over_count_is_more_than_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery} {self.sku} at {self.location}: {self.counted} counted, {self.sent} sent"

    @property
    def excess(self) -> int:
        return self.counted - self.sent
