from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from config.admin_history import HistoryAdmin as SimpleHistoryAdmin
from stores.models import Partner, PartnerAPIKey, StaffMembership, Store


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["code", "name"]


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(APIKeyModelAdmin):
    """Keys are hashed: the plain key is shown once, in a message, when head office adds one."""

    list_display = [*APIKeyModelAdmin.list_display, "partner", "scope", "proof_failures", "proof_failed_at"]
    list_filter = ["partner", "scope", "revoked", "created"]
    search_fields = [*APIKeyModelAdmin.search_fields, "partner__code", "partner__name"]
    list_select_related = ["partner"]

    def get_readonly_fields(self, request, obj=None):
        # Counted by the API, never typed in.
        return (*super().get_readonly_fields(request, obj), "proof_failures", "proof_failed_at")


class StaffMembershipInline(admin.TabularInline):
    model = StaffMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Store)
class StoreAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "partner", "region", "opens_at_launch", "is_active"]
    list_filter = ["partner", "region", "is_active"]
    search_fields = ["code", "name", "region"]
    list_select_related = ["partner"]
    inlines = [StaffMembershipInline]


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "store"]
    list_filter = ["role", "store__partner"]
    search_fields = ["user__username", "user__email", "store__code", "store__name"]
    autocomplete_fields = ["user", "store"]
    list_select_related = ["user", "store"]
