"""Head-office launch pages, and the orders pages of head office and store staff.

Thin: access check, a form, one selector or service call, a template.
"""

import csv
import secrets

from csp.decorators import csp_update
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.polls import panel_shared
from customers.selectors import order_messages
from customers.services.outbox import NotResendable, message_resend
from inventory.models import Launch
from inventory.selectors import launch_list as launches
from inventory.services import (
    FAIR_START_FIXED_BEFORE_OPENING,
    FAIR_START_MAX_SECONDS,
    LaunchSettingRefused,
    launch_fair_start_set,
    launch_notice_settings_set,
)
from orders.forms import (
    MessageResendForm,
    NoticeSettingsForm,
    OrderCancelForm,
    OrderFilterForm,
    RehearsalForm,
)
from orders.models import Rehearsal
from orders.rehearsal.rehearse import Options
from orders.selectors import launches as selectors
from orders.selectors.fairness import CSV_HEADER, fairness_csv_rows, launch_fairness
from orders.selectors.notices import stock_notice_summary
from orders.selectors.order_search import order_for_page, order_search, order_story
from orders.selectors.pulse import launch_pulse_shared
from orders.selectors.rehearsals import rehearsals_recent
from orders.services.cancellation import OrderNotCancellable, order_cancel_by_staff
from orders.services.rehearsals import rehearsal_start
from stores.access import HtmxHttpRequest, head_office_required, staff_login_required, store_for_staff
from stores.models import Store


@require_GET
@head_office_required
def launch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/launch_list.html", {"launches": launches()})


TEMPLATE = "orders/launch_overview.html"


def _overview(
    request: HtmxHttpRequest, launch: Launch, *, notice_form: NoticeSettingsForm | None = None
) -> HttpResponse:
    pulse = launch_pulse_shared(launch=launch)
    if request.htmx and notice_form is None:
        return render(request, TEMPLATE + "#pulse", {"launch": launch, "pulse": pulse})
    overview = selectors.launch_overview_cached(launch=launch)
    notice_form = notice_form or NoticeSettingsForm(
        initial={"notice_factor": launch.notice_factor, "claim_window_minutes": launch.claim_window_minutes}
    )
    return render(
        request,
        TEMPLATE,
        {
            "launch": launch,
            "pulse": pulse,
            "overview": overview,
            "statuses": selectors.STATUSES,
            # Embedded with json_script, so the charts draw without a second request.
            "charts": selectors.launch_chart_data(overview=overview, with_window_series=False),
            "notices": stock_notice_summary(launch=launch),
            "form": notice_form,
            "fair_start_max": FAIR_START_MAX_SECONDS,
            "fair_start_fixed_minutes": int(FAIR_START_FIXED_BEFORE_OPENING.total_seconds() // 60),
        },
    )


class FairStartForm(forms.Form):
    seconds = forms.IntegerField(
        min_value=0,
        max_value=FAIR_START_MAX_SECONDS,
        error_messages={"required": "Give a number of seconds; 0 switches the fair start off."},
    )


@require_POST
@head_office_required
def launch_fair_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Set the launch's fair start; the answer is a message on the overview."""
    launch = get_object_or_404(Launch, slug=slug)
    form = FairStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("seconds", ["Give a whole number of seconds."])))
        return redirect("launch-overview", slug=launch.slug)
    try:
        launch = launch_fair_start_set(launch=launch, seconds=form.cleaned_data["seconds"])
    except LaunchSettingRefused as refused:
        messages.error(request, str(refused))
    else:
        seconds = launch.fair_start_seconds
        messages.success(
            request,
            f"Fair start: orders in the first {seconds} seconds are served in a random draw."
            if seconds
            else "Fair start off: first come, first served from the opening second.",
        )
    return redirect("launch-overview", slug=launch.slug)


@require_GET
@head_office_required
def launch_fairness_audit(request: HttpRequest, slug: str) -> HttpResponse:
    """The fairness audit, read from the database now; ?format=csv for its per-pool CSV."""
    launch = get_object_or_404(Launch, slug=slug)
    audit = launch_fairness(launch=launch)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="fairness-{launch.slug}.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_HEADER)
        writer.writerows(fairness_csv_rows(audit=audit))
        return response
    return render(request, "orders/launch_fairness.html", {"launch": launch, "audit": audit})


@require_GET
@head_office_required
@panel_shared
def launch_overview(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The whole overview, or (for htmx polling) just its live figures and last-hour chart."""
    return _overview(request, get_object_or_404(Launch, slug=slug))


@require_POST
@head_office_required
def launch_notice_settings(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Head office sets the launch's stock notice factor and claim window; bad values are
    form errors on the overview and change nothing."""
    launch = get_object_or_404(Launch, slug=slug)
    form = NoticeSettingsForm(request.POST)
    if not form.is_valid():
        return _overview(request, launch, notice_form=form)
    launch_notice_settings_set(
        launch=launch,
        notice_factor=form.cleaned_data["notice_factor"],
        claim_window_minutes=form.cleaned_data["claim_window_minutes"],
    )
    messages.success(request, "Stock notice settings saved; they apply to units freed from now on.")
    return redirect("launch-overview", slug=launch.slug)


@require_GET
@head_office_required
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview_cached(launch=launch)
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


REHEARSALS = "orders/rehearsals.html"


@require_http_methods(["GET", "POST"])
@head_office_required
def rehearsal_list(request: HtmxHttpRequest) -> HttpResponse:
    """Start a rehearsal (a Celery task) and watch it; kept reports are listed with their links."""
    form = RehearsalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        launch = Launch.objects.get(slug=data["launch"])
        options = Options(
            url=settings.SITE_URL,
            launch=launch.slug,
            duration=data["duration"],
            peak_rate=data["peak_rate"],
            show_up=data["show_up"],
            jitter=data["jitter"],
            fair_start=data["fair_start"],
        )
        rehearsal_start(launch=launch, options=options.as_dict())
        return redirect("rehearsal-list")
    context = {"form": form, "rehearsals": rehearsals_recent()}
    if request.htmx and request.method == "GET":
        return render(request, REHEARSALS + "#rehearsal-table", context)
    return render(request, REHEARSALS, context, status=400 if request.method == "POST" else 200)


@require_GET
@head_office_required
@csp_update({"style-src": ["'unsafe-inline'"]})
def rehearsal_report(request: HttpRequest, pk: int) -> HttpResponse:
    """The report as it was written: one self-contained page (its own inline style, no script)."""
    rehearsal = get_object_or_404(Rehearsal, pk=pk, status=Rehearsal.Status.DONE)
    return HttpResponse(rehearsal.report_html)


@require_GET
@head_office_required
def rehearsal_report_json(request: HttpRequest, pk: int) -> JsonResponse:
    rehearsal = get_object_or_404(Rehearsal, pk=pk, status=Rehearsal.Status.DONE)
    return JsonResponse(rehearsal.summary)


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
                    messages.success(request, f"Order {order.reference} is cancelled; the customer is told.")
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
                        messages.success(
                            request, f"{original.get_kind_display()} is queued to be sent again."
                        )
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
