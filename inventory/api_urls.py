"""Supplier API, mounted at /api/v1/deliveries/ by config/urls.py."""

from django.urls import path

from inventory.api import DeliveryManifestView

urlpatterns = [path("", DeliveryManifestView.as_view(), name="api-deliveries")]
