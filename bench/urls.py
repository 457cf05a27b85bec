"""The project's URLs plus the bench's floor view (bench/floor.py) at /bench/floor."""

from django.urls import path

from bench.floor import floor_view
from config.urls import handler404, handler500, urlpatterns

urlpatterns = [*urlpatterns, path("bench/floor", floor_view)]

__all__ = ["handler404", "handler500", "urlpatterns"]
