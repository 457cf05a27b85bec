from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from orders import views

urlpatterns = [
    path("office/launches/", views.launch_list, name="launch-list"),
    path("office/launches/<slug64:slug>/", views.launch_overview, name="launch-overview"),
    path("office/launches/<slug64:slug>/charts.json", views.launch_charts, name="launch-charts"),
    path(
        "office/launches/<slug64:slug>/stock-notices/",
        views.launch_notice_settings,
        name="launch-notice-settings",
    ),
    path("office/rehearsals/", views.rehearsal_list, name="rehearsal-list"),
    path("office/rehearsals/<int:pk>/report.html", views.rehearsal_report, name="rehearsal-report"),
    path("office/rehearsals/<int:pk>/report.json", views.rehearsal_report_json, name="rehearsal-report-json"),
    path("office/orders/", views.order_list, name="order-list"),
    path("office/orders/<reference:reference>/", views.order_detail, name="order-detail"),
    path("stores/<store:code>/orders/", views.store_order_list, name="store-order-list"),
    path(
        "stores/<store:code>/orders/<reference:reference>/",
        views.store_order_detail,
        name="store-order-detail",
    ),
    path("office/launches/<slug64:slug>/fairness/", views.launch_fairness_audit, name="launch-fairness"),
    path("office/launches/<slug64:slug>/fair-start/", views.launch_fair_start, name="launch-fair-start"),
]
