"""Head office's pages and the public unsubscribe link."""

import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils.html import escape

from customers.models import Campaign, Message
from customers.services import outbox
from customers.tests.conftest import allocated_messages, order_make
from customers.tests.factories import CustomerFactory, RegistrationFactory
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def office(client):
    membership = StaffMembershipFactory(store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, membership.user)
    return client


def test_pages_are_head_office_only(client, launch_with_sku):
    staff = StaffMembershipFactory()
    client.force_login(staff.user)
    for name in ("customer-lookup", "campaigns", "campaign-preview"):
        assert client.get(reverse(name)).status_code == 403
    client.logout()
    assert client.get(reverse("campaigns")).status_code == 302


def test_start_campaign_from_the_page_twice_queues_one_per_customer(office, launch_with_sku):
    launch, sku = launch_with_sku
    for number in (1, 2, 3):
        order_make(
            launch=launch, customer=CustomerFactory(), sku=sku, status="waitlisted", wait_number=number
        )
    data = {"launch": launch.slug, "kind": "apology", "audience": "waitlisted", "confirm": "yes"}
    first = office.post(reverse("campaigns"), data)
    second = office.post(reverse("campaigns"), data)
    campaign = Campaign.objects.get()
    assert first.url == second.url == reverse("campaign-detail", kwargs={"pk": campaign.pk})
    assert campaign.messages.count() == 3
    page = office.get(first.url)
    assert page.status_code == 200 and b"<progress" in page.content and b"every 2s" in page.content
    fragment = office.get(first.url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content and b'id="progress"' in fragment.content
    assert b"data-queued>3<" in fragment.content


def test_a_campaign_shows_its_recipient_count_and_starts_only_when_confirmed(office, launch_with_sku):
    launch, sku = launch_with_sku
    for number in (1, 2):
        order_make(
            launch=launch, customer=CustomerFactory(), sku=sku, status="waitlisted", wait_number=number
        )
    data = {"launch": launch.slug, "kind": "apology", "audience": "waitlisted"}
    asked = office.post(reverse("campaigns"), data)
    assert asked.status_code == 200
    assert b"Email 2 customers?" in asked.content and b'data-field="recipients">2<' in asked.content
    assert b'name="confirm" value="yes"' in asked.content
    assert not Campaign.objects.exists() and not Message.objects.exists()
    started = office.post(reverse("campaigns"), data | {"confirm": "yes"})
    assert started.status_code == 302
    assert Campaign.objects.get().messages.count() == 2


def test_a_campaign_with_no_recipients_cannot_start(office, launch_with_sku):
    launch, _ = launch_with_sku
    data = {"launch": launch.slug, "kind": "apology", "audience": "waitlisted"}
    for attempt in (data, data | {"confirm": "yes"}):  # a forged confirmation is refused too
        refused = office.post(reverse("campaigns"), attempt)
        assert refused.status_code == 400
        assert b"Nobody is in the audience" in refused.content
        assert b'name="confirm"' not in refused.content
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_bad_campaign_form_shows_errors_not_500(office, launch_with_sku):
    launch, _ = launch_with_sku
    bad = office.post(
        reverse("campaigns"), {"launch": launch.slug, "kind": "back_in_stock", "audience": "waitlisted"}
    )
    assert bad.status_code == 400 and b"cannot go to" in bad.content
    junk = office.post(reverse("campaigns"), {"launch": "nope", "kind": "x", "audience": "y"})
    assert junk.status_code == 400
    assert not Campaign.objects.exists()
    assert office.get(reverse("campaign-detail", kwargs={"pk": 999})).status_code == 404


def test_preview_for_a_real_customer(office, launch_with_sku):
    launch, sku = launch_with_sku
    customer = CustomerFactory()
    order = order_make(launch=launch, customer=customer, sku=sku, status="waitlisted", wait_number=4)
    response = office.get(
        reverse("campaign-preview"),
        {"launch": launch.slug, "kind": "apology", "customer": customer.account_number},
    )
    assert response.status_code == 200 and order.reference.encode() in response.content
    missing = office.get(
        reverse("campaign-preview"), {"launch": launch.slug, "kind": "apology", "customer": "zzz"}
    )
    assert missing.status_code == 400 and b"No customer" in missing.content
    assert not Message.objects.exists()


def test_customer_lookup_shows_registration_orders_and_messages(office, launch_with_sku):
    launch, sku = launch_with_sku
    (message,) = allocated_messages(launch=launch, sku=sku, n=1)
    customer = message.customer
    RegistrationFactory(customer=customer, launch=launch, preferred_sku=sku)
    found = office.get(reverse("customer-lookup"), {"q": customer.account_number})
    assert escape(customer.name).encode() in found.content  # Faker's names include O'Neill
    page = office.get(reverse("customer-detail", kwargs={"account_number": customer.account_number}))
    body = page.content.decode()
    assert message.order_reference in body and "Your phone is reserved" in body and "Pending" in body
    assert launch.name in body
    assert office.get(reverse("customer-detail", kwargs={"account_number": "nobody"})).status_code == 404


def test_unsubscribe_link_works_and_suppresses_only_marketing(client, launch_with_sku):
    customer = CustomerFactory()
    url = reverse("unsubscribe", kwargs={"token": outbox.unsubscribe_token_make(customer=customer)})
    page = client.get(url)
    assert page.status_code == 200 and "Stop marketing emails?" in page.text
    customer.refresh_from_db()
    assert not customer.marketing_opt_out  # a link scanner's GET changes nothing
    assert client.post(url).status_code == 200  # the page's button
    customer.refresh_from_db()
    assert customer.marketing_opt_out
    customer.marketing_opt_out = False
    customer.save()
    # RFC 8058 one-click POST from a mail client: no CSRF token, still honoured.
    csrf_client = client.__class__(enforce_csrf_checks=True)
    assert csrf_client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    customer.refresh_from_db()
    assert customer.marketing_opt_out


def test_tampered_unsubscribe_link_is_refused(client):
    customer = CustomerFactory()
    token = outbox.unsubscribe_token_make(customer=customer)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(reverse("unsubscribe", kwargs={"token": tampered})).status_code == 400
    other = UserFactory()  # a token signed for something else is refused too
    from django.core import signing

    foreign = signing.dumps({"c": other.pk}, salt="another.purpose")
    assert client.post(reverse("unsubscribe", kwargs={"token": foreign})).status_code == 400
    customer.refresh_from_db()
    assert not customer.marketing_opt_out


def test_customer_search_finds_by_account_number_email_or_part_of_a_name(office):
    jo = CustomerFactory(account_number="D0001234", name="Jo Bloggs", email="jo@example.com")
    CustomerFactory(account_number="D0009999", name="Sam Smith", email="sam@example.com")
    for query in ("d0001234", "JO@example.com", "bloggs", "o Blo"):
        page = office.get(reverse("customer-lookup"), {"q": query})
        assert page.status_code == 200
        assert re.findall(r'href="/office/customers/c/(\w+)/"', page.content.decode()) == [
            jo.account_number
        ], query
    assert b"No customer matches" in office.get(reverse("customer-lookup"), {"q": "D000123"}).content


def test_customer_search_indexes_exist_for_every_way_it_searches():
    if connection.vendor != "postgresql":
        pytest.skip("the search indexes are PostgreSQL's (SQLite scans its small table)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'customers_customer'")
        names = {row[0] for row in cursor.fetchall()}
    assert {"customer_account_upper", "customer_email_upper", "customer_name_trgm"} <= names


def test_a_campaign_without_messages_reads_as_nobody_to_send_to_not_finished(office, launch_with_sku):
    launch, _ = launch_with_sku
    campaign = Campaign.objects.create(
        launch=launch, kind="apology", audience="waitlisted"
    )  # recorded before the refusal
    page = office.get(reverse("campaign-detail", kwargs={"pk": campaign.pk})).content.decode()
    assert "Nobody to send to" in page and "Finished." not in page
    assert 'value="0"' in page and "every 2s" not in page
