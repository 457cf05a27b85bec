from django.contrib.auth import views as auth_views
from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from stores import sign_in_views, views, webhook_views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", sign_in_views.two_factor_verify, name="two-factor-verify"),
    path("accounts/two-factor/setup/", sign_in_views.two_factor_setup, name="two-factor-setup"),
    path("stores/<store:code>/", views.store_detail, name="store-detail"),
    path("stores/<store:code>/tickets/", views.store_ticket_issue, name="store-ticket-issue"),
    path("stores/<store:code>/serve-next/", views.store_serve_next, name="store-serve-next"),
    path("stores/<store:code>/pass-over/", views.store_ticket_pass_over, name="store-ticket-pass-over"),
    path("stores/<store:code>/collect/", views.store_order_collect, name="store-order-collect"),
    path("stores/<store:code>/ready/", views.store_collect_list, name="store-collect-list"),
    path("stores/<store:code>/deliveries/", views.store_deliveries_list, name="store-deliveries"),
    path("office/webhooks/", webhook_views.webhook_list, name="webhook-list"),
    path("office/webhooks/<int:pk>/", webhook_views.webhook_endpoint, name="webhook-endpoint"),
    path(
        "office/webhooks/<int:pk>/action/",
        webhook_views.webhook_endpoint_action,
        name="webhook-endpoint-action",
    ),
    path(
        "office/webhooks/deliveries/<int:pk>/retry/",
        webhook_views.webhook_delivery_retry_view,
        name="webhook-delivery-retry",
    ),
]
