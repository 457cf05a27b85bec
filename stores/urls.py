from django.contrib.auth import views as auth_views
from django.urls import path

from stores import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("stores/<str:code>/", views.store_detail, name="store-detail"),
]
