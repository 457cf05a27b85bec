"""Who may open a staff page: the decorators and checks every app's staff views share.

An entry-point helper (views of any app import it; no service or model does): store
staff see their own stores, head office sees everything (stores.selectors decides).
"""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, resolve_url
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from stores.models import Store
from stores.selectors import user_is_head_office, user_may_see_store

View = Callable[..., HttpResponse]


class HtmxHttpRequest(HttpRequest):
    """The request as django-htmx's middleware leaves it (for type checkers)."""

    htmx: HtmxDetails


def staff_login_required(view: View) -> View:
    """login_required, except that an htmx request (a poll after the session expired)
    sends the whole browser to sign in instead of swapping the sign-in page into a panel."""

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and request.htmx:
            page = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(
                f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': page})}"
            )
        return login_required(view)(request, *args, **kwargs)

    return wrapped


def head_office_required(view: View) -> View:
    """Signed in (htmx-aware, as staff_login_required) and head office; otherwise 403."""

    @staff_login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_head_office(user=request.user):
            raise PermissionDenied("Head office only.")
        return view(request, *args, **kwargs)

    return wrapped


def store_for_staff(request: HttpRequest, code: str) -> Store:
    """The store named in the URL, if this user may see it (404 if none, 403 if not theirs)."""
    store = get_object_or_404(Store.objects.select_related("partner"), code=code)
    if not user_may_see_store(user=request.user, store=store):
        raise PermissionDenied("You are not staff of this store.")
    return store
