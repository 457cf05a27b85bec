"""Head-office launch pages. Thin: access check, one selector call, a template."""

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inventory.models import Launch
from inventory.selectors import launch_list as launches
from inventory.services import launch_notice_settings_set
from orders.forms import NoticeSettingsForm, RehearsalForm
from orders.models import Rehearsal
from orders.rehearsal.rehearse import Options
from orders.selectors import launches as selectors
from orders.selectors.notices import stock_notice_summary
from orders.selectors.pulse import launch_pulse_shared
from orders.selectors.rehearsals import rehearsals_recent
from orders.services.rehearsals import rehearsal_start
from stores.access import HtmxHttpRequest, head_office_required


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
        },
    )


@require_GET
@head_office_required
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
