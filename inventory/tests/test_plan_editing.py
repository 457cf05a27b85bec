"""Editing an allocation plan: one save for every figure, all or none; "Suggest again" is
one entry in the plan's history, not one per figure."""

import pytest
from django.utils import timezone

from inventory.manifests import manifest_parse
from inventory.models import AllocationPlan, AllocationPlanLine
from inventory.services import PlanInvalid, PlanNotEditable, delivery_announce, plan_approve, plan_lines_set
from inventory.tests.world import add_orders, make_launch, make_stores, waitlist_everything
from orders.services.intake import delivery_intake, delivery_plan_suggest
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():
    launch, skus = make_launch(skus=3)
    stores = make_stores(20)
    for n, sku in enumerate(skus):
        add_orders(launch=launch, sku=sku, pool=stores[n], count=4, start=n * 10)
    waitlist_everything(launch)
    body = "reference,expected_on,sku,quantity,launch\n" + "".join(
        f"DLV-E,{timezone.localdate()},{sku.code},30,iphone-3g\n" for sku in skus
    )
    delivery = delivery_announce(manifest=manifest_parse(content=body.encode()), source="test")[0]
    delivery_intake(delivery_id=delivery.pk)
    return AllocationPlan.objects.get(delivery=delivery)


def test_suggesting_again_is_one_history_entry_however_many_figures_it_sets(plan):
    head = UserFactory(username="head")
    assert plan.lines.count() == 3 * 21  # three SKUs, the online pool and twenty stores
    lines_before = AllocationPlanLine.history.filter(plan_id=plan.pk).count()
    plans_before = plan.history.count()

    delivery_plan_suggest(delivery=plan.delivery, user=head, minimum_per_store=1, partner_share_percent=None)

    assert AllocationPlanLine.history.filter(plan_id=plan.pk).count() == lines_before
    entries = list(plan.history.order_by("-history_date")[: plan.history.count() - plans_before])
    assert len(entries) == 1
    assert entries[0].history_user == head
    assert entries[0].history_change_reason == (
        "suggested again from demand (minimum per store 1, partners' share none)"
    )
    assert set(plan.lines.values_list("quantity", flat=True)) >= {1}


def test_a_save_changes_every_figure_or_none(plan):
    head = UserFactory(username="head")
    a, b = plan.lines.order_by("pk")[:2]
    with pytest.raises(PlanInvalid):
        plan_lines_set(plan_id=plan.pk, quantities={a.pk: a.quantity + 1, b.pk: -1}, user=head)
    assert AllocationPlanLine.objects.get(pk=a.pk).quantity == a.quantity

    changed = plan_lines_set(plan_id=plan.pk, quantities={a.pk: a.quantity + 1, b.pk: b.quantity}, user=head)
    assert changed == 1
    assert AllocationPlanLine.objects.get(pk=a.pk).history.first().history_user == head

    with pytest.raises(PlanInvalid):  # a line id that is not this plan's
        plan_lines_set(plan_id=plan.pk, quantities={a.pk: a.quantity, 0: 1}, user=head)

    plan_lines_set(plan_id=plan.pk, quantities={a.pk: a.quantity}, user=head)
    plan_approve(plan_id=plan.pk, user=head)
    with pytest.raises(PlanNotEditable):
        plan_lines_set(plan_id=plan.pk, quantities={a.pk: 0}, user=head)
