from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from inventory import views

app_name = "inventory"

urlpatterns = [
    path("deliveries/", views.delivery_list, name="delivery-list"),
    path("deliveries/<delivery:reference>/intake/", views.delivery_intake_now, name="delivery-intake"),
    path("deliveries/<delivery:reference>/plan/", views.plan_detail, name="plan-detail"),
    path("deliveries/<delivery:reference>/plan/save/", views.plan_save_all, name="plan-save"),
    path("deliveries/<delivery:reference>/plan/suggest/", views.plan_suggest_again, name="plan-suggest"),
    path("deliveries/<delivery:reference>/plan/approve/", views.plan_approve_view, name="plan-approve"),
    path("demand/<slug64:slug>/", views.demand_report, name="demand"),
    path("stores/<store:code>/receive/", views.store_receiving, name="store-receiving"),
    path("over-counts/", views.over_count_list, name="over-counts"),
    path("over-counts/<int:pk>/decide/", views.over_count_decide, name="over-count-decide"),
]
