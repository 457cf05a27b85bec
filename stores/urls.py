from django.contrib.auth import views as auth_views
from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from stores import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", views.two_factor_verify, name="two-factor-verify"),
    path("accounts/two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("stores/<store:code>/", views.store_detail, name="store-detail"),
    path("stores/<store:code>/tickets/", views.store_ticket_issue, name="store-ticket-issue"),
    path("stores/<store:code>/serve-next/", views.store_serve_next, name="store-serve-next"),
    path("stores/<store:code>/pass-over/", views.store_ticket_pass_over, name="store-ticket-pass-over"),
    path("stores/<store:code>/collect/", views.store_order_collect, name="store-order-collect"),
]
