"""Head-office launch pages, and the orders pages of head office and store staff.

Thin: access check, a form, one selector or service call, a template.
"""

import secrets

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from customers.selectors import order_messages
from customers.services.outbox import NotResendable, message_resend
from inventory.models import Launch
from inventory.selectors import launch_list as launches
from orders.forms import MessageResendForm, OrderCancelForm, OrderFilterForm
from orders.selectors import launches as selectors
from orders.selectors.order_search import order_for_page, order_search, order_story
from orders.services.cancellation import OrderNotCancellable, order_cancel_by_staff
from stores.access import HtmxHttpRequest, head_office_required, staff_login_required, store_for_staff
from stores.models import Store


@require_GET
@head_office_required
def launch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/launch_list.html", {"launches": launches()})


@require_GET
@head_office_required
def launch_overview(request: HttpRequest, slug: str) -> HttpResponse:
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview(launch=launch)
    return render(
        request,
        "orders/launch_overview.html",
        {
            "launch": launch,
            "overview": overview,
            "statuses": selectors.STATUSES,
            # Embedded with json_script, so the charts draw without a second request.
            "charts": selectors.launch_chart_data(overview=overview),
        },
    )


@require_GET
@head_office_required
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview(launch=launch)
    return JsonResponse(selectors.launch_chart_data(overview=overview))


# --- Orders: head office finds any order, store staff their own store's ---------------------


@require_GET
@head_office_required
def order_list(request: HtmxHttpRequest) -> HttpResponse:
    return _order_list(request, store=None)


@require_GET
@staff_login_required
def store_order_list(request: HtmxHttpRequest, code: str) -> HttpResponse:
    return _order_list(request, store=store_for_staff(request, code))


@require_http_methods(["GET", "POST"])
@head_office_required
def order_detail(request: HttpRequest, reference: str) -> HttpResponse:
    return _order_detail(request, reference=reference, store=None)


@require_http_methods(["GET", "POST"])
@staff_login_required
def store_order_detail(request: HttpRequest, code: str, reference: str) -> HttpResponse:
    return _order_detail(request, reference=reference, store=store_for_staff(request, code))


def _order_list(request: HtmxHttpRequest, *, store: Store | None) -> HttpResponse:
    """The whole page, or (for htmx, when the filters change) just its results."""
    form = OrderFilterForm(request.GET, store=store)
    page, older_url = None, ""
    if form.is_valid():
        page = order_search(filters=form.filters(), before=form.cleaned_data["before"])
        if page.older_than is not None:
            query = request.GET.copy()
            query["before"] = str(page.older_than)
            older_url = f"?{query.urlencode()}"
    context = {
        "form": form,
        "page": page,
        "store": store,
        "older_url": older_url,
        "newest_url": _without_cursor(request),
    }
    template = "orders/order_list.html"
    if request.htmx and request.htmx.target == "order-results":
        template += "#order-results"
    return render(request, template, context, status=200 if page is not None else 400)


def _without_cursor(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("before", None)
    return f"?{query.urlencode()}" if query else "?"


def _order_detail(request: HttpRequest, *, reference: str, store: Store | None) -> HttpResponse:
    """The order's timeline and its two actions, each behind an explicit confirmation.

    An action that works redirects back here (so a reload repeats nothing); one that does
    not re-renders the page with its form's errors and changes nothing.
    """
    order = order_for_page(reference=reference, store_id=store.pk if store is not None else None)
    if order is None:
        raise Http404("No such order.")
    cancel_form = OrderCancelForm(prefix="cancel")
    resend_form = MessageResendForm(prefix="resend")
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "cancel":
            cancel_form = OrderCancelForm(request.POST, prefix="cancel")
            if cancel_form.is_valid():
                try:
                    order_cancel_by_staff(
                        order=order, reason=cancel_form.cleaned_data["reason"], user=request.user
                    )
                except OrderNotCancellable as exc:
                    cancel_form.add_error(None, str(exc))
                else:
                    flash.success(request, f"Order {order.reference} is cancelled; the customer is told.")
                    return redirect(request.path)
        elif action == "resend":
            resend_form = MessageResendForm(request.POST, prefix="resend")
            if resend_form.is_valid():
                original = (
                    order_messages(customer_id=order.customer_id, reference=order.reference)
                    .filter(pk=resend_form.cleaned_data["message"])
                    .first()
                )
                if original is None:
                    resend_form.add_error(None, "That email is not one of this order's.")
                else:
                    try:
                        message_resend(original=original, token=resend_form.cleaned_data["token"])
                    except NotResendable as exc:
                        resend_form.add_error(None, str(exc))
                    else:
                        flash.success(request, f"{original.get_kind_display()} is queued to be sent again.")
                        return redirect(request.path)
        else:
            cancel_form.add_error(None, "Choose an action on this page.")
    story = order_story(order=order)
    context = {
        "story": story,
        "order": story.order,
        "store": store,
        "cancel_form": cancel_form,
        "resend_form": resend_form,
        "resend_token": secrets.token_hex(16),
        "list_url": reverse("store-order-list", kwargs={"code": store.code})
        if store is not None
        else reverse("order-list"),
    }
    failed = request.method == "POST"
    return render(request, "orders/order_detail.html", context, status=400 if failed else 200)
