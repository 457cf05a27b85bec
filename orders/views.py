"""Head-office launch pages. Thin: access check, one selector call, a template."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from inventory.models import Launch
from inventory.selectors import launch_list as launches
from orders.selectors import launches as selectors
from orders.selectors.pulse import launch_pulse_shared
from stores.access import HtmxHttpRequest, head_office_required


@require_GET
@head_office_required
def launch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/launch_list.html", {"launches": launches()})


TEMPLATE = "orders/launch_overview.html"


@require_GET
@head_office_required
def launch_overview(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The whole overview, or (for htmx polling) just its live figures and last-hour chart."""
    launch = get_object_or_404(Launch, slug=slug)
    pulse = launch_pulse_shared(launch=launch)
    if request.htmx:
        return render(request, TEMPLATE + "#pulse", {"launch": launch, "pulse": pulse})
    overview = selectors.launch_overview_cached(launch=launch)
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
        },
    )


@require_GET
@head_office_required
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview_cached(launch=launch)
    return JsonResponse(selectors.launch_chart_data(overview=overview))
