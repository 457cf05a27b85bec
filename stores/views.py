"""Staff pages: where a user lands after sign-in, and a store's live page.

The store page reads through the selectors of inventory (stock, deliveries) and orders
(walk-in queue, collect orders) and acts through orders' services (walk-in queue,
collection): entry points may use any app's services and selectors.

One view serves the whole store page or, for htmx, just its live panel; every action is
an hx-post that answers with the updated panel plus the outcome (swapped out of band into
a notice area above the panel, so the next poll does not wipe it), or a redirect with a
message when the browser posts without htmx.
"""

import re
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inventory.models import Launch
from inventory.selectors import (
    launch_current,
    launch_for_store_page,
    location_of_store,
    store_deliveries,
    store_stock,
)
from inventory.services import InsufficientStock
from orders.models import Order
from orders.selectors.store_page import store_collect, store_collect_ready, store_walkin_queue
from orders.services.collection import NotCollectable, order_collect
from orders.services.walkin import WalkInError, ticket_issue, ticket_pass_over, ticket_serve_next
from stores.access import HtmxHttpRequest, staff_login_required, store_for_staff
from stores.models import Store
from stores.selectors import stores_for_user, user_is_head_office

TEMPLATE = "stores/store_detail.html"
COLLECT_CHANGED = "collect-changed"
# Order references are short upper-case letters and digits (orders.services.admission).
REFERENCE_SHAPE = re.compile(r"[A-Z0-9]{1,16}")


@dataclass(frozen=True)
class Notice:
    """The outcome of a staff action, shown above the live panel."""

    text: str
    level: str = "success"  # or "error"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Anonymous users sign in; head office gets the launch, store staff their store."""
    if not request.user.is_authenticated:
        return redirect("login")
    if user_is_head_office(user=request.user):
        launch = launch_current()
        if launch is not None:
            return redirect("launch-overview", slug=launch.slug)
        return redirect("launch-list")
    store = stores_for_user(user=request.user).order_by("code").first()
    if store is not None:
        return redirect("store-detail", code=store.code)
    return render(request, "stores/no_store.html", status=403)


def _live_context(*, store: Store, launch: Launch | None) -> dict:
    """What the live panel shows: a handful of small queries whose cost does not grow with
    the store's orders (the list of orders to hand over is its own, paged part)."""
    location = location_of_store(store=store)
    stock_lines = store_stock(store=store, launch=launch)
    collect = store_collect(
        store=store,
        launch=launch,
        pool_id=location.pk if location else None,
        sku_ids=[line.sku.pk for line in stock_lines],
    )
    return {
        "store": store,
        "launch": launch,
        "stock_lines": stock_lines,
        # The walk-in sale of a SKU is refused while collect orders are still owed it.
        "walkin_lines": [
            {"sku": line.sku, "stock": line.stock, "owed": collect.owed_by_sku.get(line.sku.pk, 0)}
            for line in stock_lines
        ],
        "queue": store_walkin_queue(store=store, launch=launch),
        "collect": collect,
    }


def _deliveries_context(*, store: Store) -> dict:
    location = location_of_store(store=store)
    return {
        "store": store,
        "deliveries": store_deliveries(location=location, to_receive_only=True, limit=10) if location else [],
    }


@require_GET
@staff_login_required
def store_detail(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The store's page, or (for htmx polling) just its live panel."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    context = _live_context(store=store, launch=launch)
    if request.htmx:
        return render(request, TEMPLATE + "#live-panel", context)
    context |= _collect_list_context(request, store=store, launch=launch)
    context |= _deliveries_context(store=store)
    return render(request, TEMPLATE, context)


@require_GET
@staff_login_required
def store_deliveries_list(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """htmx: the deliveries the store has still to confirm, on their own slow schedule.

    They change a few times a week; in the two-second panel their query was the costliest
    part of every poll. Without htmx the store page shows them."""
    store = store_for_staff(request, code)
    if not request.htmx:
        return redirect("store-detail", code=store.code)
    return render(request, TEMPLATE + "#store-deliveries", _deliveries_context(store=store))


def _action_done(
    request: HtmxHttpRequest,
    store: Store,
    launch: Launch | None,
    notice: Notice,
    *,
    collect_changed: bool = False,
) -> HttpResponse:
    """htmx: the refreshed panel and the notice. Otherwise: a message and back to the page."""
    if request.htmx:
        context = _live_context(store=store, launch=launch) | {"notice": notice}
        response = render(request, TEMPLATE + "#action-result", context)
        if collect_changed:
            # The list of orders to hand over is not in the panel: it reloads on this event.
            response["HX-Trigger"] = COLLECT_CHANGED
        return response
    level = messages.ERROR if notice.level == "error" else messages.SUCCESS
    messages.add_message(request, level, notice.text)
    return redirect("store-detail", code=store.code)


def _collect_list_context(request: HttpRequest, *, store: Store, launch: Launch | None) -> dict:
    search = request.GET.get("q", "")[:64].replace("\x00", "")
    try:
        page_number = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        page_number = 1
    page = store_collect_ready(store=store, launch=launch, search=search, page=page_number)
    return {"store": store, "launch": launch, "ready": page, "search": search}


@require_GET
@staff_login_required
def store_collect_list(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """htmx: one page of the orders ready to hand over, searchable by reference or name.
    Without htmx the store page itself shows that page of the list."""
    store = store_for_staff(request, code)
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(reverse("store-detail", kwargs={"code": store.code}) + (f"?{query}" if query else ""))
    context = _collect_list_context(request, store=store, launch=launch_for_store_page())
    return render(request, TEMPLATE + "#collect-list", context)


@require_POST
@staff_login_required
def store_ticket_issue(request: HtmxHttpRequest, code: str) -> HttpResponse:
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    if launch is None:
        notice = Notice("No launch is set up, so there is no queue to join.", "error")
    else:
        ticket = ticket_issue(launch=launch, store=store)
        notice = Notice(f"Ticket #{ticket.number} issued. Write it on the customer's ticket.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_serve_next(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Sell one unit of the chosen SKU to the first waiting ticket."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    # Matched against the launch's own SKUs in Python: any string at all (NUL bytes
    # included, which PostgreSQL refuses) is just "not one of ours".
    skus = {s.code: s for s in launch.skus.all()} if launch is not None else {}
    sku = skus.get(request.POST.get("sku", ""))
    if launch is None:
        notice = Notice("No launch is set up, so there is nothing to sell.", "error")
    elif sku is None:
        notice = Notice("Choose a model of this launch to sell.", "error")
    else:
        try:
            ticket = ticket_serve_next(launch=launch, store=store, sku=sku, user=request.user)
        except WalkInError as exc:
            notice = Notice(f"Not sold: {exc}", "error")
        else:
            if ticket is None:
                notice = Notice("Nobody is waiting: issue a ticket first.", "error")
            else:
                notice = Notice(f"Now serving #{ticket.number}: one {sku.code} sold.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_ticket_pass_over(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The first waiting walk-in leaves without a unit, and the queue moves on."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    ticket = ticket_pass_over(launch=launch, store=store, user=request.user) if launch is not None else None
    if ticket is None:
        notice = Notice("Nobody is waiting.", "error")
    else:
        notice = Notice(f"Ticket #{ticket.number} left without a unit; no stock moved.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_order_collect(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Hand a held unit over to the customer who came for their click-and-collect order."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    reference = request.POST.get("order", "").strip().upper()
    if not REFERENCE_SHAPE.fullmatch(reference):
        reference = ""  # never sent to the database: it cannot be a reference
    # Only this store's collect orders: another store's reference is "not here", never a 500.
    order = (
        Order.objects.filter(reference=reference, store=store, fulfilment=Order.Fulfilment.COLLECT)
        .select_related("customer", "sku")
        .first()
        if reference
        else None
    )
    if order is None:
        notice = Notice(
            f"No click-and-collect order {reference or 'with that reference'} is held at this store.", "error"
        )
    else:
        try:
            order_collect(order=order, user=request.user)
        except NotCollectable as exc:
            notice = Notice(str(exc), "error")
        except InsufficientStock:
            notice = Notice(f"Order {order.reference} has no unit held here; ask head office.", "error")
        else:
            notice = Notice(
                f"Order {order.reference} collected by {order.customer.name}: one {order.sku.code}."
            )
            return _action_done(request, store, launch, notice, collect_changed=True)
    return _action_done(request, store, launch, notice)
