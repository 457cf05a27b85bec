from django.contrib.auth import views as auth_views
from django.urls import path

from stores import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("stores/<str:code>/", views.store_detail, name="store-detail"),
    path("stores/<str:code>/tickets/", views.store_ticket_issue, name="store-ticket-issue"),
    path("stores/<str:code>/serve-next/", views.store_serve_next, name="store-serve-next"),
    path("stores/<str:code>/pass-over/", views.store_ticket_pass_over, name="store-ticket-pass-over"),
    path("stores/<str:code>/collect/", views.store_order_collect, name="store-order-collect"),
    path("stores/<str:code>/ready/", views.store_collect_list, name="store-collect-list"),
    path("office/webhooks/", views.webhook_list, name="webhook-list"),
    path("office/webhooks/<int:pk>/", views.webhook_endpoint, name="webhook-endpoint"),
    path("office/webhooks/<int:pk>/action/", views.webhook_endpoint_action, name="webhook-endpoint-action"),
    path(
        "office/webhooks/deliveries/<int:pk>/retry/",
        views.webhook_delivery_retry_view,
        name="webhook-delivery-retry",
    ),
]
