"""Staff pages: where a user lands after sign-in, and a store's live page.

The store page reads launch and order figures through orders.selectors; that is the
view layer composing reads, not a model import in the stores app, so the one-way
imports of the domain (orders -> inventory -> stores) hold for models and services.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from orders import selectors as order_selectors
from stores.models import Store
from stores.selectors import stores_for_user, user_is_head_office, user_may_see_store


class HtmxHttpRequest(HttpRequest):
    """The request as django-htmx's middleware leaves it (for type checkers)."""

    htmx: HtmxDetails


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Anonymous users sign in; head office gets the launch, store staff their store."""
    if not request.user.is_authenticated:
        return redirect("login")
    if user_is_head_office(user=request.user):
        launch = order_selectors.launch_current()
        if launch is not None:
            return redirect("launch-overview", slug=launch.slug)
        return redirect("launch-list")
    store = stores_for_user(user=request.user).order_by("code").first()
    if store is not None:
        return redirect("store-detail", code=store.code)
    return render(request, "stores/no_store.html", status=403)


@require_GET
@login_required
def store_detail(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The store's page, or (for htmx polling) just its live panel."""
    store = get_object_or_404(Store.objects.select_related("partner"), code=code)
    if not user_may_see_store(user=request.user, store=store):
        raise PermissionDenied("You are not staff of this store.")
    launch = order_selectors.launch_for_store_page()
    collect = order_selectors.store_collect_orders(store=store, launch=launch)
    context = {
        "store": store,
        "launch": launch,
        "stock_lines": order_selectors.store_stock(store=store, launch=launch),
        "collect": collect,
        "collect_waiting": sum(collect.values()),
    }
    template = "stores/store_detail.html"
    if request.htmx:
        template += "#live-panel"
    return render(request, template, context)
