"""The public unsubscribe link (mounted at /unsubscribe/ in config/urls.py)."""

from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from customers import views

urlpatterns = [
    path("<token:token>/", views.unsubscribe, name="unsubscribe"),
]
