"""403, 404 and 500 are the app's own pages with a way back; under /api/ the JSON envelope."""

import json

import pytest
from django.test import RequestFactory
from django.urls import reverse

from orders.api.errors import permission_denied, server_error
from stores.models import StaffMembership
from stores.tests.factories import StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_404_is_an_in_app_page_with_a_way_back(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "We can't find that page" in body
    assert 'href="/upgrade/"' in body and 'class="site-header"' in body


def test_api_404_keeps_the_json_envelope(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["error"]["code"] == "not_found"


def test_403_is_an_in_app_page_naming_the_account(client):
    StoreFactory(code="S001")
    user = UserFactory(username="someone")
    StaffMembership.objects.create(user=user, store=StoreFactory(code="S002"))
    client.force_login(user)
    response = client.get(reverse("store-detail", kwargs={"code": "S001"}))
    assert response.status_code == 403
    body = response.content.decode()
    assert "You can't open this page" in body and "someone" in body
    assert f'href="{reverse("home")}"' in body


def test_api_403_keeps_the_json_envelope():
    request = RequestFactory().get("/api/v1/orders/")
    response = permission_denied(request, exception=None)
    assert response.status_code == 403
    assert json.loads(response.content)["error"]["code"] == "permission_denied"


def test_500_is_an_in_app_page_that_needs_no_database_and_api_keeps_json():
    page = server_error(RequestFactory().get("/stores/S001/"))
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.content.decode()
    assert 'href="/upgrade/"' in page.content.decode()
    api = server_error(RequestFactory().get("/api/v1/orders/"))
    assert api.status_code == 500 and json.loads(api.content)["error"]["code"] == "server_error"


def test_brand_colours_come_from_settings(client, settings):
    settings.BRAND_COLOUR = "#ffd700"  # too light for white text or for links on white
    settings.OPERATOR_NAME = "O2 Launch"
    css = client.get(reverse("brand-css")).content.decode()
    assert "--brand: #ffd700" in css and "--on-brand: #000000" in css and "--accent: #0550ae" in css
    page = client.get(reverse("journey-launches")).content.decode()
    assert "O2 Launch" in page
    settings.BRAND_COLOUR = "#0a3d62"
    css = client.get(reverse("brand-css")).content.decode()
    assert "--on-brand: #ffffff" in css and "--accent: #0a3d62" in css
