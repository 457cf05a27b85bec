import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
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

    def scope_fits_partner(self) -> bool:
        """Retail chains hold orders keys, suppliers deliveries keys, and nothing else."""
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


# Which scopes each kind of partner may hold: retail chains order, suppliers deliver.
SCOPES_BY_KIND: dict[str, frozenset[str]] = {
    Partner.Kind.RETAILER: frozenset({PartnerAPIKey.Scope.ORDERS}),
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
