"""The customer's upgrade journey, mounted at upgrade/ (public pages)."""

from django.urls import path, register_converter

from orders import journey


class ReferenceConverter:
    # References are capitals and digits; anything else (NUL bytes, slashes, spaces) is a
    # 404 from the resolver instead of reaching the database.
    regex = "[A-Z0-9]{6,16}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ReferenceConverter, "reference")

urlpatterns = [
    path("", journey.launch_list, name="journey-launches"),
    path("orders/<reference:reference>/", journey.order_status, name="journey-order"),
    path("<slug:slug>/", journey.launch_detail, name="journey-launch"),
    path("<slug:slug>/register/", journey.launch_register, name="journey-register"),
    path("<slug:slug>/order/", journey.launch_order, name="journey-order-place"),
    path("<slug:slug>/availability/", journey.launch_availability, name="journey-availability"),
]
