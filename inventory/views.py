"""Head-office delivery pages (plans, intake, demand against supply) and store receiving.

Views are thin: they check who may see what, read through selectors and act through
services (inventory's own, and orders' where a step needs demand or the allocator:
entry points may use any app's services). GET pages never write: a delivery without a
plan shows a button that suggests one.
"""

import csv

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.inputs import clean_text, matches
from config.shapes import DELIVERY_REFERENCE
from inventory.models import (
    AllocationPlan,
    AllocationPlanLine,
    Delivery,
    Launch,
    Location,
    ReceiptOverCount,
    StockMovement,
)
from inventory.selectors import store_deliveries, store_delivery_expected
from inventory.services import (
    DeliveryError,
    over_count_approve,
    over_count_reject,
    plan_approve,
    plan_lines_set,
    store_delivery_receive,
)
from inventory.services.receiving import REASON_MAX
from inventory.tasks import allocate_after_store_receipt, intake_delivery
from orders.selectors.demand import demand_vs_supply_cached
from orders.services.intake import delivery_plan_suggest
from stores.access import head_office_required, staff_login_required, store_for_staff


def _int_or_none(value) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 10_000_000 else None


# --- Deliveries and intake --------------------------------------------------------------


@require_GET
@head_office_required
def delivery_list(request):
    deliveries = list(
        Delivery.objects.select_related("launch", "plan")
        .annotate(units=Sum("lines__quantity"), skus=Count("lines"))
        .order_by("-expected_on", "reference")
    )
    for delivery in deliveries:
        # A reference recorded before manifests were held to the address alphabet has no
        # address: listed, never linked (reversing it would fail the whole page).
        delivery.addressable = matches(DELIVERY_REFERENCE, delivery.reference)
    return render(request, "inventory/delivery_list.html", {"deliveries": deliveries})


@require_http_methods(["GET", "POST"])
@head_office_required
def delivery_intake_now(request, reference: str):
    """Intake moves stock and cannot be undone: a page first says what it will do, and
    only its confirmed POST starts it (a POST without the confirmation shows the page)."""
    delivery = get_object_or_404(
        Delivery.objects.select_related("launch", "plan").annotate(units=Sum("lines__quantity")),
        reference=reference,
    )
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        # Enqueued after commit; with the embedded default (eager Celery) it runs right here.
        intake_delivery.delay_on_commit(delivery.pk, request.user.pk)
        messages.info(request, f"Intake of {delivery.reference} started.")
        return redirect("inventory:delivery-list")
    plan = getattr(delivery, "plan", None)
    return render(
        request,
        "inventory/intake_confirm.html",
        {
            "delivery": delivery,
            "plan": plan,
            "auto_apply": delivery.launch is not None and delivery.launch.auto_apply_plans,
            "finished": delivery.status not in (Delivery.Status.ANNOUNCED, Delivery.Status.RECEIVED),
        },
    )


# --- Allocation plans -------------------------------------------------------------------


PLAN_FIGURE_ERROR = "Enter a whole number of units, 0 or more."


def _plan_context(
    plan: AllocationPlan, *, posted: dict[int, str] | None = None, errors: dict[int, str] | None = None
) -> dict:
    """The plan as a grid: a row per pool, a column per SKU, a cell per plan line.

    `posted` and `errors` (line id -> what was typed, and its problem) redisplay a save that
    was refused, so each error sits on the cell that holds it and the units left to give
    are counted from the figures on the screen, never from older saved ones.
    """
    posted, errors = posted or {}, errors or {}
    lines = list(plan.lines.select_related("sku", "location", "location__store"))
    delivered = dict(plan.delivery.lines.values_list("sku_id", "quantity"))
    skus = sorted({line.sku for line in lines}, key=lambda sku: sku.code)
    locations = sorted(
        {line.location for line in lines}, key=lambda loc: (loc.kind != Location.Kind.ONLINE, loc.code)
    )
    cells = {(line.location_id, line.sku_id): line for line in lines}
    columns = {
        sku.pk: {"sku": sku, "delivered": delivered.get(sku.pk, 0), "left": 0, "unknown": False}
        for sku in skus
    }
    for column in columns.values():
        column["left"] = column["delivered"]
    for line in lines:
        line.shown = posted.get(line.pk, str(line.quantity))
        line.error = errors.get(line.pk, "")
        figure = _int_or_none(line.shown)
        if figure is None:
            columns[line.sku_id]["unknown"] = True
        else:
            columns[line.sku_id]["left"] -= figure
    rows = [{"location": loc, "cells": [cells.get((loc.pk, sku.pk)) for sku in skus]} for loc in locations]
    line_history = (
        AllocationPlanLine.history.filter(plan_id=plan.pk, history_type="~")
        .select_related("history_user")
        .order_by("-history_date")[:30]
    )
    suggestions = (
        AllocationPlan.history.filter(id=plan.pk, history_change_reason__isnull=False)
        .select_related("history_user")
        .order_by("-history_date")[:10]
    )
    sku_codes = {sku.pk: sku.code for sku in skus}
    loc_codes = {loc.pk: loc.code for loc in locations}
    history = [
        {
            "at": h.history_date,
            "who": h.history_user,
            "what": f"set {sku_codes.get(h.sku_id, h.sku_id)} at {loc_codes.get(h.location_id, h.location_id)} "
            f"to {h.quantity}",
        }
        for h in line_history
    ] + [{"at": h.history_date, "who": h.history_user, "what": h.history_change_reason} for h in suggestions]
    history.sort(key=lambda entry: entry["at"], reverse=True)
    return {
        "plan": plan,
        "delivery": plan.delivery,
        "columns": list(columns.values()),
        "rows": rows,
        "errors": errors,
        "editable": plan.status == AllocationPlan.Status.DRAFT,
        "last_saved": history[0] if history else None,
        "history": history[:30],
    }


def _find_plan(reference: str) -> tuple[Delivery, AllocationPlan | None]:
    delivery = get_object_or_404(Delivery, reference=reference)
    plan = AllocationPlan.objects.filter(delivery=delivery).select_related("delivery", "approved_by").first()
    return delivery, plan


def _get_plan(reference: str) -> AllocationPlan:
    """The delivery's plan, suggested now if it has none (for POSTs only)."""
    delivery, plan = _find_plan(reference)
    return plan if plan is not None else delivery_plan_suggest(delivery=delivery)


@require_GET
@head_office_required
def plan_detail(request, reference: str):
    delivery, plan = _find_plan(reference)
    if plan is None:
        return render(request, "inventory/plan_missing.html", {"delivery": delivery})
    return render(request, "inventory/plan.html", _plan_context(plan))


@require_POST
@head_office_required
def plan_save_all(request, reference: str):
    """The plan's one Save: every figure of the grid at once, all or none."""
    plan = _get_plan(reference)
    posted: dict[int, str] = {}
    quantities: dict[int, int] = {}
    errors: dict[int, str] = {}
    for line_id in plan.lines.values_list("pk", flat=True):
        raw = request.POST.get(f"line-{line_id}")
        if raw is None:
            continue
        posted[line_id] = raw[:20]
        quantity = _int_or_none(raw)
        if quantity is None:
            errors[line_id] = PLAN_FIGURE_ERROR
        else:
            quantities[line_id] = quantity
    if not errors:
        try:
            changed = plan_lines_set(plan_id=plan.pk, quantities=quantities, user=request.user)
        except DeliveryError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"Saved: {changed} figure{'s' if changed != 1 else ''} changed."
                if changed
                else "Saved: nothing had changed.",
            )
        return redirect("inventory:plan-detail", reference=reference)
    # Nothing saved: the grid again, as typed, each problem on its cell.
    plan.refresh_from_db()
    return render(
        request, "inventory/plan.html", _plan_context(plan, posted=posted, errors=errors), status=400
    )


@require_POST
@head_office_required
def plan_suggest_again(request, reference: str):
    plan = _get_plan(reference)
    minimum = _int_or_none(request.POST.get("minimum_per_store") or 0)
    share_raw = (request.POST.get("partner_share_percent") or "").strip()
    share = _int_or_none(share_raw) if share_raw else None
    if minimum is None or (share_raw and (share is None or share > 100)):
        messages.error(request, "Minimum per store is a whole number; partner share is 0 to 100 or empty.")
        return redirect("inventory:plan-detail", reference=reference)
    try:
        delivery_plan_suggest(
            delivery=plan.delivery, user=request.user, minimum_per_store=minimum, partner_share_percent=share
        )
    except DeliveryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Suggested again from today's demand.")
    return redirect("inventory:plan-detail", reference=reference)


@require_POST
@head_office_required
def plan_approve_view(request, reference: str):
    plan = _get_plan(reference)
    try:
        plan_approve(plan_id=plan.pk, user=request.user)
    except DeliveryError as exc:
        messages.error(request, str(exc))
        return redirect("inventory:plan-detail", reference=reference)
    if plan.delivery.status == Delivery.Status.RECEIVED:
        # The units are already in the warehouse: distribute them now.
        intake_delivery.delay_on_commit(plan.delivery_id, request.user.pk)
        messages.success(request, "Plan approved; the delivery is being distributed.")
    else:
        messages.success(request, "Plan approved; it will be applied when the delivery arrives.")
    return redirect("inventory:plan-detail", reference=reference)


# --- Demand against supply ------------------------------------------------------------


DEMAND_COLUMNS = (
    "registered",
    "registered_without_order",
    "ordered",
    "allocated",
    "sold",
    "waiting",
    "available",
    "delivered",
    "shortfall",
)
DEMAND_SORTS = ("pool", "sku", *DEMAND_COLUMNS)
# The CSV keeps the columns it always had in their order; the new one goes last, so a
# spreadsheet reading them by position still reads the same figures.
DEMAND_CSV_COLUMNS = (
    "registered",
    "ordered",
    "allocated",
    "sold",
    "waiting",
    "delivered",
    "available",
    "shortfall",
    "registered_without_order",
)


def _demand_view(request, rows):
    """The rows the page's filter (pool, SKU) and sort (any column, either way) ask for, and
    a problem sentence when the query names a pool, SKU or column the report does not have."""
    pools = sorted({r.location_code for r in rows}, key=lambda code: (code != "ONLINE", code))
    skus = sorted({r.sku_code for r in rows})
    pool, sku = request.GET.get("pool", ""), request.GET.get("sku", "")
    sort = request.GET.get("sort", "pool")
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    problem = ""
    if (pool and pool not in pools) or (sku and sku not in skus) or key not in DEMAND_SORTS:
        problem = "Choose a pool and SKU from the lists, and sort by one of the columns."
        pool, sku, key, descending = "", "", "pool", False
    shown = [r for r in rows if (not pool or r.location_code == pool) and (not sku or r.sku_code == sku)]
    order = {code: i for i, code in enumerate(pools)}
    if key == "pool":
        shown.sort(key=lambda r: (order[r.location_code], r.sku_code), reverse=descending)
    elif key == "sku":
        shown.sort(key=lambda r: (r.sku_code, order[r.location_code]), reverse=descending)
    else:
        shown.sort(key=lambda r: (getattr(r, key), r.location_code, r.sku_code), reverse=descending)
    columns = [
        {
            "key": c,
            "sort": f"-{c}" if c == key and not descending else c,
            "aria": ("descending" if descending else "ascending") if c == key else "",
        }
        for c in DEMAND_SORTS
    ]
    return shown, {
        "pools": pools,
        "skus": skus,
        "pool": pool,
        "sku": sku,
        "columns": {c["key"]: c for c in columns},
        "problem": problem,
    }


@require_GET
@head_office_required
def demand_report(request, slug: str):
    launch = get_object_or_404(Launch, slug=slug)
    snapshot = demand_vs_supply_cached(launch=launch)
    rows, view = _demand_view(request, snapshot.rows)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="demand-{launch.slug}.csv"'
        writer = csv.writer(response)
        writer.writerow(["location", "store", "sku", *DEMAND_CSV_COLUMNS])
        for r in rows:
            writer.writerow(
                [r.location_code, r.store_name, r.sku_code, *(getattr(r, c) for c in DEMAND_CSV_COLUMNS)]
            )
        return response
    totals = {field: sum(getattr(r, field) for r in rows) for field in DEMAND_COLUMNS}
    chart = {}
    for r in rows:
        entry = chart.setdefault(r.location_code, {"demand": 0, "delivered": 0})
        entry["demand"] += max(r.registered, r.ordered)
        entry["delivered"] += r.delivered
    return render(
        request,
        "inventory/demand.html",
        {
            "launch": launch,
            "rows": rows,
            "supply": snapshot.supply,
            "totals": totals,
            "view": view,
            "query": request.GET.urlencode(),
            "counted_at": snapshot.counted_at,
            "chart": {
                "labels": list(chart),
                "demand": [v["demand"] for v in chart.values()],
                "delivered": [v["delivered"] for v in chart.values()],
            },
        },
        status=400 if view["problem"] else 200,
    )


# --- Store receiving --------------------------------------------------------------------


def _receivable(location: Location) -> list[dict]:
    """Applied deliveries that sent units to this store: what was sent and whether received."""
    result = []
    for delivery in store_deliveries(location=location, to_receive_only=False, limit=20):
        lines = list(
            AllocationPlanLine.objects.filter(plan__delivery=delivery, location=location, quantity__gt=0)
            .select_related("sku")
            .order_by("sku__code")
        )
        movements = (
            StockMovement.objects.filter(
                location=location,
                reference=delivery.reference,
                kind__in=[StockMovement.Kind.STORE_RECEIPT, StockMovement.Kind.ADJUSTMENT],
            ).select_related("sku", "created_by")
            if delivery.received
            else []
        )
        result.append(
            {
                "delivery": delivery,
                "lines": lines,
                "expected": {line.sku_id: line.quantity for line in lines},
                "received": delivery.received,
                "movements": movements,
                "over_counts": list(
                    ReceiptOverCount.objects.filter(delivery=delivery, location=location).select_related(
                        "sku", "decided_by"
                    )
                )
                if delivery.received
                else [],
            }
        )
    return result


@require_http_methods(["GET", "POST"])
@staff_login_required
def store_receiving(request, code: str):
    store = store_for_staff(request, code)
    location = Location.objects.filter(store=store).first()
    if request.method == "POST":
        if location is None:
            raise PermissionDenied("This store has no stock location.")
        reference = request.POST.get("delivery", "")
        if not matches(DELIVERY_REFERENCE, reference):
            raise Http404("No such delivery.")  # never looked up: it cannot be a reference
        delivery = get_object_or_404(Delivery, reference=reference)
        reason = clean_text(request.POST.get("reason", ""), max_length=REASON_MAX)
        expected = store_delivery_expected(delivery=delivery, location=location)
        received, bad = {}, []
        for sku_id in expected:
            value = _int_or_none(request.POST.get(f"received-{sku_id}"))
            if value is None:
                bad.append(sku_id)
            else:
                received[sku_id] = value
        if bad:
            messages.error(request, "Enter the units that arrived as whole numbers, 0 or more.")
        elif reason is None:
            messages.error(request, f"Give the reason in up to {REASON_MAX} letters, digits or punctuation.")
        else:
            try:
                with transaction.atomic():
                    store_delivery_receive(
                        delivery_id=delivery.pk,
                        location=location,
                        received=received,
                        reason=reason,
                        user=request.user,
                    )
                    if delivery.launch_id:
                        # Waiting click-and-collect orders are served first, in sequence order.
                        allocate_after_store_receipt.delay_on_commit(delivery.launch_id)
            except DeliveryError as exc:
                messages.error(request, str(exc))
            else:
                held = ReceiptOverCount.objects.filter(delivery=delivery, location=location).count()
                messages.success(
                    request,
                    f"Delivery {delivery.reference} received."
                    + (
                        f" {held} SKU(s) counted more than was sent: the extra units wait for head office."
                        if held
                        else ""
                    ),
                )
                return redirect(reverse("inventory:store-receiving", kwargs={"code": store.code}))
    return render(
        request,
        "inventory/store_receiving.html",
        {"store": store, "deliveries": _receivable(location) if location else []},
    )


# --- Over-counts: a second person decides ----------------------------------------------


@require_GET
@head_office_required
def over_count_list(request):
    """Stores' counts above what was sent: waiting ones first, then the last decisions."""
    claims = ReceiptOverCount.objects.select_related(
        "delivery", "location", "location__store", "sku", "reported_by", "decided_by"
    )
    return render(
        request,
        "inventory/over_counts.html",
        {
            "pending": list(claims.filter(status=ReceiptOverCount.Status.PENDING)),
            "decided": list(
                claims.exclude(status=ReceiptOverCount.Status.PENDING).order_by("-decided_at", "-pk")[:30]
            ),
        },
    )


@require_POST
@head_office_required
def over_count_decide(request, pk: int):
    claim = get_object_or_404(ReceiptOverCount.objects.select_related("delivery"), pk=pk)
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        messages.error(request, "Choose approve or reject.")
        return redirect("inventory:over-counts")
    try:
        with transaction.atomic():
            if decision == "approve":
                over_count_approve(over_count_id=claim.pk, user=request.user)
                if claim.delivery.launch_id:
                    # The approved units serve the store's waiting collect orders first.
                    allocate_after_store_receipt.delay_on_commit(claim.delivery.launch_id)
            else:
                over_count_reject(over_count_id=claim.pk, user=request.user)
    except DeliveryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Over-count {'approved: the units are in stock' if decision == 'approve' else 'rejected: no stock moved'}.",
        )
    return redirect("inventory:over-counts")
