from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from customers import views

urlpatterns = [
    path("", views.customer_lookup, name="customer-lookup"),
    path("c/<account:account_number>/", views.customer_detail, name="customer-detail"),
    path("campaigns/", views.campaigns, name="campaigns"),
    path("campaigns/preview/", views.campaign_preview_view, name="campaign-preview"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
]
