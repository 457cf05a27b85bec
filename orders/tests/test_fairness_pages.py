"""Head office's fairness audit page, its CSV, and the fair start setting on the overview."""

import csv
import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Launch
from inventory.tests.factories import LaunchFactory
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def head(client):
    user = UserFactory()
    StaffMembershipFactory(user=user, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, user)
    return client


@pytest.fixture
def served_launch(launch_with_stock):
    """Two units online, five orders: two served, three waitlisted (places 1 to 3)."""
    launch, *_ = launch_with_stock(online_units=2, customers=5)
    for n in range(1, 6):
        order_admit(
            launch=launch.slug,
            customer=f"D{n:07d}",
            sku="IP3G-8GB-BLACK",
            fulfilment="delivery",
            channel=Order.Channel.ONLINE,
        )
    launch_allocate(launch_id=launch.pk)
    return launch


def test_the_audit_page_shows_each_check_with_what_it_looked_at_and_0_violations(head, served_launch):
    page = head.get(reverse("launch-fairness", kwargs={"slug": served_launch.slug}))
    assert page.status_code == 200
    html = page.text
    assert 'data-violations="0"' in html
    assert html.count('data-field="violations">0<') == 4
    assert 'data-check="out_of_turn"' in html and 'data-check="positions"' in html
    overview = head.get(reverse("launch-overview", kwargs={"slug": served_launch.slug})).text
    assert reverse("launch-fairness", kwargs={"slug": served_launch.slug}) in overview


def test_the_audit_page_shows_a_violation_written_into_the_database(head, served_launch):
    waiting = (
        Order.objects.filter(launch=served_launch, status=Order.Status.WAITLISTED).order_by("pk").first()
    )
    Order.objects.filter(pk=waiting.pk).update(told_position=9)
    html = head.get(reverse("launch-fairness", kwargs={"slug": served_launch.slug})).text
    assert 'data-violations="1"' in html


def test_the_csv_has_one_line_per_pool_with_its_counts(head, served_launch):
    response = head.get(reverse("launch-fairness", kwargs={"slug": served_launch.slug}), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 1
    assert rows[0]["sku"] == "IP3G-8GB-BLACK"
    assert (rows[0]["orders"], rows[0]["served"], rows[0]["waitlisted_told"]) == ("5", "2", "3")
    assert (
        rows[0]["served_out_of_turn"] == rows[0]["wrong_positions_told"] == rows[0]["stock_rows_wrong"] == "0"
    )


def test_only_head_office_opens_the_audit(client, served_launch):
    url = reverse("launch-fairness", kwargs={"slug": served_launch.slug})
    assert client.get(url).status_code == 302
    client.force_login(StaffMembershipFactory().user)
    assert client.get(url).status_code == 403
    assert (
        client.post(
            reverse("launch-fair-start", kwargs={"slug": served_launch.slug}), {"seconds": 5}
        ).status_code
        == 403
    )


def _soon(**delta) -> Launch:
    opens = timezone.now() + datetime.timedelta(**delta)
    return LaunchFactory(slug="later", opens_at=opens, closes_at=opens + datetime.timedelta(days=1))


def test_head_office_sets_a_fair_start_before_opening(head):
    launch = _soon(hours=2)
    response = head.post(
        reverse("launch-fair-start", kwargs={"slug": launch.slug}), {"seconds": "30"}, follow=True
    )
    launch.refresh_from_db()
    assert launch.fair_start_seconds == 30
    assert "first 30 seconds" in response.text


@pytest.mark.parametrize("seconds", ["", "-1", "601", "ten", "9" * 5000])
def test_a_bad_fair_start_is_a_message_and_changes_nothing(head, seconds):
    launch = _soon(hours=2)
    response = head.post(
        reverse("launch-fair-start", kwargs={"slug": launch.slug}), {"seconds": seconds}, follow=True
    )
    assert response.status_code == 200
    assert 'class="message error"' in response.text
    launch.refresh_from_db()
    assert launch.fair_start_seconds == 0


def test_a_nul_in_the_fair_start_is_refused_before_the_view_and_changes_nothing(head):
    """config.inputs' backstop answers 400 for NUL in any form field, before any view runs."""
    launch = _soon(hours=2)
    response = head.post(reverse("launch-fair-start", kwargs={"slug": launch.slug}), {"seconds": "\x00"})
    assert response.status_code == 400
    launch.refresh_from_db()
    assert launch.fair_start_seconds == 0


def test_the_fair_start_is_fixed_from_shortly_before_opening(head):
    launch = _soon(minutes=5)
    response = head.post(
        reverse("launch-fair-start", kwargs={"slug": launch.slug}), {"seconds": "30"}, follow=True
    )
    assert "can no longer change" in response.text
    launch.refresh_from_db()
    assert launch.fair_start_seconds == 0


def test_the_status_page_says_in_the_opening_draw_while_the_draw_is_open(client, launch_with_stock):
    """No number while the draw is open (API.md: queue_position null), a sentence instead."""
    launch, *_ = launch_with_stock(online_units=1, customers=1)
    Launch.objects.filter(pk=launch.pk).update(
        opens_at=timezone.now() - datetime.timedelta(seconds=2), fair_start_seconds=60
    )
    order = order_admit(
        launch=launch.slug, customer="D0000001", sku="IP3G-8GB-BLACK", fulfilment="delivery", channel="online"
    ).order
    assert order.fair_draw is not None
    html = client.get(reverse("journey-order", kwargs={"reference": order.reference})).text
    assert "You are in the opening draw" in html
    assert "first 60 seconds" in html
