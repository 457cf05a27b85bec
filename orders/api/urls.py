"""URLs under /api/: the partner API (v1), its OpenAPI schema and browsable docs.

Anything else under /api/ answers with the JSON error envelope, never an HTML page.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from config import inputs  # noqa: F401 - registers the path converters used below
from orders.api import views, webhooks
from orders.api.errors import api_not_found

urlpatterns = [
    path("schema/", SpectacularJSONAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's setup as a script file: no inline script under the CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/launches/", views.LaunchListView.as_view(), name="api-launches"),
    path(
        "v1/launches/<slug64:slug>/availability",
        views.LaunchAvailabilityView.as_view(),
        name="api-launch-availability",
    ),
    path("v1/orders/", views.OrderCollectionView.as_view(), name="api-orders"),
    path("v1/orders/bulk", views.OrderBulkView.as_view(), name="api-orders-bulk"),
    path("v1/orders/<reference:reference>", views.OrderDetailView.as_view(), name="api-order"),
    path("v1/stores/", views.StoreListView.as_view(), name="api-stores"),
    path("v1/stores/<store:code>/stock", views.StoreStockView.as_view(), name="api-store-stock"),
    path("v1/webhooks/endpoints/", webhooks.EndpointCollectionView.as_view(), name="api-webhook-endpoints"),
    path(
        "v1/webhooks/endpoints/<str:pk>", webhooks.EndpointDetailView.as_view(), name="api-webhook-endpoint"
    ),
    path(
        "v1/webhooks/endpoints/<str:pk>/rotate-secret",
        webhooks.EndpointRotateView.as_view(),
        name="api-webhook-endpoint-rotate",
    ),
    path(
        "v1/webhooks/endpoints/<str:pk>/replay",
        webhooks.EndpointReplayView.as_view(),
        name="api-webhook-endpoint-replay",
    ),
    path("v1/webhooks/deliveries/", webhooks.DeliveryCollectionView.as_view(), name="api-webhook-deliveries"),
    path(
        "v1/webhooks/deliveries/<str:pk>", webhooks.DeliveryDetailView.as_view(), name="api-webhook-delivery"
    ),
    path(
        "v1/webhooks/deliveries/<str:pk>/retry",
        webhooks.DeliveryRetryView.as_view(),
        name="api-webhook-delivery-retry",
    ),
    re_path(r"^", api_not_found),
]
