from django.contrib import admin

from orders.models import ClaimWindow, Order, PoolState, StockNotice, Ticket


class ViewOnlyAdmin(admin.ModelAdmin):
    """Orders, pools and tickets change only through orders.services (status machine,
    allocator, ledger); editing them here would bypass stock and sequence rules."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ViewOnlyAdmin):
    list_display = [
        "sequence",
        "reference",
        "launch",
        "customer",
        "sku",
        "channel",
        "fulfilment",
        "store",
        "status",
        "wait_number",
        "created_at",
    ]
    list_filter = ["launch", "status", "channel", "fulfilment", "sku", "partner"]
    search_fields = ["=reference", "=customer__account_number"]
    raw_id_fields = ["customer", "store", "pool", "partner"]
    list_select_related = ["launch", "customer", "sku", "store"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(PoolState)
class PoolStateAdmin(ViewOnlyAdmin):
    list_display = ["launch", "sku", "pool", "waitlisted_total", "served_through", "waiting"]
    list_filter = ["launch", "sku", "pool__kind"]
    list_select_related = ["launch", "sku", "pool"]


@admin.register(ClaimWindow)
class ClaimWindowAdmin(ViewOnlyAdmin):
    list_display = [
        "pk",
        "launch",
        "sku",
        "pool",
        "status",
        "units",
        "claimed",
        "notified",
        "opened_at",
        "closes_at",
    ]
    list_filter = ["launch", "status", "sku", "pool__kind"]
    list_select_related = ["launch", "sku", "pool"]


@admin.register(StockNotice)
class StockNoticeAdmin(ViewOnlyAdmin):
    list_display = ["pk", "window", "rank", "customer", "order", "claimed_at"]
    list_filter = ["launch", "window__status"]
    search_fields = ["=customer__account_number"]
    raw_id_fields = ["window", "customer", "order"]
    list_select_related = ["window", "customer", "order"]
    show_full_result_count = False


@admin.register(Ticket)
class TicketAdmin(ViewOnlyAdmin):
    list_display = [
        "store",
        "number",
        "launch",
        "status",
        "sku",
        "customer",
        "issued_at",
        "served_at",
        "served_by",
    ]
    list_filter = ["launch", "status", "store"]
    search_fields = ["store__code", "=customer__account_number"]
    raw_id_fields = ["customer"]
    list_select_related = ["store", "launch", "sku", "customer", "served_by"]
