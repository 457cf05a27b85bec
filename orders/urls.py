from django.urls import path

from orders import views

urlpatterns = [
    path("office/launches/", views.launch_list, name="launch-list"),
    path("office/launches/<slug:slug>/", views.launch_overview, name="launch-overview"),
    path("office/launches/<slug:slug>/charts.json", views.launch_charts, name="launch-charts"),
]
