"""The public unsubscribe link (mounted at /unsubscribe/ in config/urls.py)."""

from django.urls import path

from customers import views

urlpatterns = [
    path("<str:token>/", views.unsubscribe, name="unsubscribe"),
]
