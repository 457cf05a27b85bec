"""Campaigns of a launch: audiences from the orders table, dedupe across starts and
audiences, the automatic apology."""

import pytest

from customers.models import Campaign, Message
from customers.services.campaigns import CampaignHasNoRecipients, CampaignNotAllowed
from customers.tests.conftest import order_make
from customers.tests.factories import CustomerFactory, RegistrationFactory
from orders.models import Order
from orders.selectors.campaigns import campaign_audience, campaign_audience_count
from orders.services.campaigns import campaign_preview, launch_sold_out_notify
from orders.services.campaigns import launch_campaign_start as campaign_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(launch_with_sku):
    """Two waitlisted customers, one allocated, two registered without an order, one cancelled."""
    launch, sku = launch_with_sku
    waiting = [CustomerFactory(), CustomerFactory()]
    for number, customer in enumerate(waiting, start=1):
        RegistrationFactory(customer=customer, launch=launch, preferred_sku=sku)
        order_make(launch=launch, customer=customer, sku=sku, status="waitlisted", wait_number=number)
    served = CustomerFactory()
    RegistrationFactory(customer=served, launch=launch, preferred_sku=sku)
    order_make(launch=launch, customer=served, sku=sku, status="allocated")
    without = [CustomerFactory(), CustomerFactory()]
    for customer in without:
        RegistrationFactory(customer=customer, launch=launch, preferred_sku=sku)
    cancelled = CustomerFactory()
    RegistrationFactory(customer=cancelled, launch=launch, preferred_sku=sku)
    order_make(launch=launch, customer=cancelled, sku=sku, status="cancelled")
    return launch, waiting, without + [cancelled]


def test_waitlisted_apology_reaches_each_waiting_customer_once_with_their_order(audience):
    launch, waiting, _ = audience
    campaign = campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    again = campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    assert again.pk == campaign.pk and campaign.queued == 2
    messages = Message.objects.filter(campaign=campaign)
    assert sorted(m.customer_id for m in messages) == sorted(c.pk for c in waiting)
    assert all(m.order_reference and not m.is_marketing for m in messages)


def test_registered_without_order_counts_cancelled_as_without(audience):
    launch, _, without = audience
    campaign = campaign_start(
        launch=launch, kind=Message.Kind.BACK_IN_STOCK, audience=Campaign.Audience.REGISTERED_WITHOUT_ORDER
    )
    assert campaign.queued == 3
    assert sorted(campaign.messages.values_list("customer_id", flat=True)) == sorted(c.pk for c in without)


def test_overlapping_audiences_never_tell_a_customer_twice(audience):
    launch, waiting, without = audience
    campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    campaign_start(
        launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.REGISTERED_WITHOUT_ORDER
    )
    per_customer = list(
        Message.objects.filter(kind=Message.Kind.APOLOGY).values_list("customer_id", flat=True)
    )
    assert len(per_customer) == len(set(per_customer)) == len(waiting) + len(without)


def test_kind_not_meant_for_audience_is_refused(audience):
    launch, _, _ = audience
    with pytest.raises(CampaignNotAllowed):
        campaign_start(launch=launch, kind=Message.Kind.BACK_IN_STOCK, audience=Campaign.Audience.WAITLISTED)
    with pytest.raises(CampaignNotAllowed):
        campaign_start(launch=launch, kind=Message.Kind.ALLOCATED, audience=Campaign.Audience.WAITLISTED)
    assert not Campaign.objects.exists()


def test_sold_out_apology_starts_only_when_switched_on(audience):
    launch, waiting, without = audience
    assert launch_sold_out_notify(launch=launch) == []
    assert not Message.objects.exists()
    launch.auto_apology = True
    launch.save()
    campaigns = launch_sold_out_notify(launch=launch)
    launch_sold_out_notify(launch=launch)
    assert all(c.automatic for c in campaigns)
    assert Message.objects.filter(kind=Message.Kind.APOLOGY).count() == len(waiting) + len(without)


def test_preview_renders_for_a_real_customer_and_sends_nothing(audience):
    launch, waiting, _ = audience
    rendered = campaign_preview(launch=launch, kind=Message.Kind.APOLOGY, customer=waiting[1])
    order = waiting[1].orders.get()
    assert order.reference in rendered.text and "number 2 in the queue" in rendered.text
    assert not Message.objects.exists()


def test_the_confirmed_count_is_the_audience_that_gets_the_email(audience):
    launch, waiting, without = audience
    for kind_audience in (Campaign.Audience.WAITLISTED, Campaign.Audience.REGISTERED_WITHOUT_ORDER):
        assert campaign_audience_count(launch=launch, audience=kind_audience) == len(
            campaign_audience(launch=launch, audience=kind_audience)
        )
    assert campaign_audience_count(launch=launch, audience=Campaign.Audience.WAITLISTED) == len(waiting)


def test_a_campaign_to_nobody_is_refused_and_records_nothing(audience):
    launch, _, _ = audience
    Order.objects.filter(launch=launch, status=Order.Status.WAITLISTED).update(status=Order.Status.CANCELLED)
    with pytest.raises(CampaignHasNoRecipients):
        campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    assert not Campaign.objects.exists()
