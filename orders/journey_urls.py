"""The customer's upgrade journey, mounted at upgrade/ (public pages)."""

from django.urls import path

from config import inputs  # noqa: F401 - registers the path converters used below
from orders import journey

urlpatterns = [
    path("", journey.launch_list, name="journey-launches"),
    path("orders/<reference:reference>/", journey.order_status, name="journey-order"),
    path("claim/<token:token>/", journey.claim, name="journey-claim"),
    path("<slug64:slug>/", journey.launch_detail, name="journey-launch"),
    path("<slug64:slug>/register/", journey.launch_register, name="journey-register"),
    path("<slug64:slug>/order/", journey.launch_order, name="journey-order-place"),
    path("<slug64:slug>/availability/", journey.launch_availability, name="journey-availability"),
]
