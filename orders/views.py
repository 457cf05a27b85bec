"""Head-office launch pages. Thin: access check, one selector call, a template."""

import csv

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from inventory.models import Launch
from inventory.selectors import launch_list as launches
from inventory.services import (
    FAIR_START_FIXED_BEFORE_OPENING,
    FAIR_START_MAX_SECONDS,
    LaunchSettingRefused,
    launch_fair_start_set,
)
from orders.selectors import launches as selectors
from orders.selectors.fairness import CSV_HEADER, fairness_csv_rows, launch_fairness
from stores.access import head_office_required


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
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview(launch=launch)
    return JsonResponse(selectors.launch_chart_data(overview=overview))
