from django.urls import path

from inventory import views

app_name = "inventory"

urlpatterns = [
    path("deliveries/", views.delivery_list, name="delivery-list"),
    path("deliveries/<str:reference>/intake/", views.delivery_intake_now, name="delivery-intake"),
    path("deliveries/<str:reference>/plan/", views.plan_detail, name="plan-detail"),
    path("deliveries/<str:reference>/plan/lines/<int:line_id>/", views.plan_line_update, name="plan-line"),
    path("deliveries/<str:reference>/plan/save/", views.plan_save_all, name="plan-save"),
    path("deliveries/<str:reference>/plan/suggest/", views.plan_suggest_again, name="plan-suggest"),
    path("deliveries/<str:reference>/plan/approve/", views.plan_approve_view, name="plan-approve"),
    path("demand/<slug:slug>/", views.demand_report, name="demand"),
    path("stores/<str:code>/receive/", views.store_receiving, name="store-receiving"),
]
