from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from config.health import ReadinessView, healthz
from config.views import brand_stylesheet, metrics, system

# /admin/ needs head office's second factor too: django-otp's admin site lets in only a
# session that proved a one-time code (its sign-in form asks for the code).
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("brand.css", brand_stylesheet, name="brand-css"),
    # For machines (orchestrator probes, Prometheus): config/health.py, config/metrics.py.
    path("healthz", healthz, name="healthz"),
    path("readyz", ReadinessView.as_view(), name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("office/system/", system, name="system"),
    path("admin/", admin.site.urls),
    path("api/v1/deliveries/", include("inventory.api_urls")),
    path("api/", include("orders.api.urls")),
    path("upgrade/", include("orders.journey_urls")),
    path("office/stock/", include("inventory.urls")),
    path("office/customers/", include("customers.urls")),
    path("unsubscribe/", include("customers.unsubscribe_urls")),
    path("", include("orders.urls")),
    path("", include("stores.urls")),
]

# JSON envelope for /api/ paths, the app's own pages (templates/403.html ...) elsewhere.
handler403 = "orders.api.errors.permission_denied"
handler404 = "orders.api.errors.page_not_found"
handler500 = "orders.api.errors.server_error"
