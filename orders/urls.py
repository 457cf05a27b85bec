from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from orders import views

urlpatterns = [
    path("office/launches/", views.launch_list, name="launch-list"),
    path("office/launches/<slug64:slug>/", views.launch_overview, name="launch-overview"),
    path("office/launches/<slug64:slug>/charts.json", views.launch_charts, name="launch-charts"),
    path("office/launches/<slug64:slug>/fairness/", views.launch_fairness_audit, name="launch-fairness"),
    path("office/launches/<slug64:slug>/fair-start/", views.launch_fair_start, name="launch-fair-start"),
]
