"""Head-office launch pages. Thin: access check, one selector call, a template."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from inventory.models import Launch
from orders import selectors
from stores.selectors import user_is_head_office


def _require_head_office(request: HttpRequest) -> None:
    if not user_is_head_office(user=request.user):
        raise PermissionDenied("Only head office may see launch pages.")


@require_GET
@login_required
def launch_list(request: HttpRequest) -> HttpResponse:
    _require_head_office(request)
    return render(request, "orders/launch_list.html", {"launches": selectors.launch_list()})


@require_GET
@login_required
def launch_overview(request: HttpRequest, slug: str) -> HttpResponse:
    _require_head_office(request)
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
@login_required
def launch_charts(request: HttpRequest, slug: str) -> JsonResponse:
    """The overview's chart data alone, for a page that wants to redraw without reloading."""
    _require_head_office(request)
    launch = get_object_or_404(Launch, slug=slug)
    overview = selectors.launch_overview(launch=launch)
    return JsonResponse(selectors.launch_chart_data(overview=overview))
