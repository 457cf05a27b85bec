import datetime

from django.conf import settings
from django.db import models
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
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class PartnerAPIKey(AbstractAPIKey):
    """A hashed, revocable key held by one partner (djangorestframework-api-key)."""

    class Scope(models.TextChoices):
        ORDERS = "orders", "Orders, availability and stock"
        DELIVERIES = "deliveries", "Delivery manifests (suppliers)"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ORDERS)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
        verbose_name_plural = "partner API keys"


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
