from django import forms
from django.contrib import admin

from config.admin_history import HistoryAdmin as SimpleHistoryAdmin
from config.inputs import matches
from config.shapes import DELIVERY_REFERENCE
from inventory.models import (
    SKU,
    AllocationPlan,
    AllocationPlanLine,
    Delivery,
    DeliveryLine,
    Launch,
    Location,
    Product,
    Stock,
    StockMovement,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never edited here: these rows change only through inventory.services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SKUInline(admin.TabularInline):
    model = SKU
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    inlines = [SKUInline]


@admin.register(SKU)
class SKUAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "product"]
    list_filter = ["product"]
    search_fields = ["code", "name", "product__code"]
    list_select_related = ["product"]


@admin.register(Launch)
class LaunchAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "opens_at", "closes_at", "per_customer_limit", "is_open"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["skus"]
    date_hierarchy = "opens_at"

    @admin.display(boolean=True, description="open now")
    def is_open(self, obj: Launch) -> bool:
        return obj.is_open


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["code", "kind", "store"]
    list_filter = ["kind"]
    search_fields = ["code", "store__name"]
    autocomplete_fields = ["store"]
    list_select_related = ["store"]


@admin.register(Stock)
class StockAdmin(ReadOnlyAdmin):
    # Levels must equal the ledger's sum, so nobody types a new level in: receipts,
    # transfers and adjustments go through stock_apply, which writes both.
    list_display = ["location", "sku", "on_hand", "reserved", "available", "in_transit"]
    list_filter = ["location__kind", "sku"]
    search_fields = ["location__code", "sku__code"]
    list_select_related = ["location", "sku"]

    @admin.display(description="available")
    def available(self, obj: Stock) -> int:
        return obj.available


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "location",
        "sku",
        "on_hand_delta",
        "reserved_delta",
        "in_transit_delta",
        "reference",
        "created_by",
    ]
    list_filter = ["kind", "location__kind", "sku"]
    search_fields = ["reference", "location__code", "sku__code", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["location", "sku", "created_by"]
    show_full_result_count = False


class DeliveryLineInline(admin.TabularInline):
    model = DeliveryLine
    extra = 0


class DeliveryAdminForm(forms.ModelForm):
    class Meta:
        model = Delivery
        fields = ["reference", "launch", "supplier", "expected_on", "status", "source"]

    def clean_reference(self) -> str:
        # The manifests' rule (inventory.manifests): a reference is part of head office's
        # addresses, and one that does not fit them breaks the deliveries page.
        reference = self.cleaned_data["reference"]
        if not matches(DELIVERY_REFERENCE, reference):
            raise forms.ValidationError(
                "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
        return reference


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    form = DeliveryAdminForm
    list_display = ["reference", "launch", "supplier", "expected_on", "status", "received_at", "source"]
    list_filter = ["status", "launch", "supplier"]
    search_fields = ["reference"]
    date_hierarchy = "expected_on"
    readonly_fields = ["received_at", "distributed_at", "created_at"]
    inlines = [DeliveryLineInline]
    list_select_related = ["launch", "supplier"]


@admin.register(DeliveryLine)
class DeliveryLineAdmin(admin.ModelAdmin):
    list_display = ["delivery", "sku", "quantity", "requested_quantity"]
    list_filter = ["sku"]
    search_fields = ["delivery__reference", "sku__code"]
    raw_id_fields = ["delivery"]
    list_select_related = ["delivery", "sku"]


class AllocationPlanLineInline(admin.TabularInline):
    model = AllocationPlanLine
    extra = 0
    readonly_fields = ["suggested_quantity", "demand_waitlisted", "demand_registered"]


@admin.register(AllocationPlan)
class AllocationPlanAdmin(SimpleHistoryAdmin):
    list_display = [
        "delivery",
        "status",
        "partner_share_percent",
        "minimum_per_store",
        "approved_by",
        "applied_at",
    ]
    list_filter = ["status"]
    search_fields = ["delivery__reference"]
    readonly_fields = ["approved_by", "approved_at", "applied_at"]
    raw_id_fields = ["delivery"]
    inlines = [AllocationPlanLineInline]
    list_select_related = ["delivery", "approved_by"]


@admin.register(AllocationPlanLine)
class AllocationPlanLineAdmin(SimpleHistoryAdmin):
    list_display = [
        "plan",
        "sku",
        "location",
        "quantity",
        "suggested_quantity",
        "demand_registered",
        "demand_waitlisted",
    ]
    list_filter = ["sku", "location__kind"]
    search_fields = ["plan__delivery__reference", "location__code", "sku__code"]
    raw_id_fields = ["plan"]
    list_select_related = ["plan__delivery", "sku", "location"]
