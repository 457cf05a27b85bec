from django.contrib import admin

from customers.models import Campaign, Customer, Message, UpgradeRegistration


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["account_number", "name", "email", "postcode", "contract_status", "marketing_opt_out"]
    list_filter = ["contract_status", "marketing_opt_out"]
    search_fields = ["=account_number", "name", "email", "postcode"]
    # Tens of thousands of rows: skip the second COUNT(*) on every filtered page.
    show_full_result_count = False


@admin.register(UpgradeRegistration)
class UpgradeRegistrationAdmin(admin.ModelAdmin):
    list_display = ["customer", "launch", "preferred_sku", "preferred_store", "registered_at"]
    list_filter = ["launch", "preferred_sku", "preferred_store"]
    search_fields = ["=customer__account_number", "customer__name"]
    raw_id_fields = ["customer"]
    autocomplete_fields = ["preferred_store"]
    list_select_related = ["customer", "launch", "preferred_sku", "preferred_store"]
    show_full_result_count = False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["launch", "kind", "audience", "started_by", "started_at"]
    list_filter = ["launch", "kind", "audience"]
    readonly_fields = ["started_by", "started_at"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The outbox, for looking in. Only `status` may be changed, to retry a failed message;
    messages are written by the services that cause them and never deleted here."""

    list_display = ["pk", "kind", "customer", "launch", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "kind", "launch"]
    search_fields = ["=customer__account_number", "=order_reference", "dedupe_key", "=message_id"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer", "launch"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Message._meta.fields if f.name != "status"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
