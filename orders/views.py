"""Head-office launch pages. Thin: access check, one selector call, a template."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from inventory.models import Launch
from inventory.selectors import launch_list as launches
from orders.selectors import launches as selectors
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
        },
    )


@require_GET
@head_office_required
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview(launch=launch)
    return JsonResponse(selectors.launch_chart_data(overview=overview))
