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
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from config.logcontext import log_context
from stores.models import Store
from stores.selectors import stores_for_user, user_is_head_office

View = Callable[..., HttpResponse]


class HtmxHttpRequest(HttpRequest):
    """The request as django-htmx's middleware leaves it (for type checkers)."""

    htmx: HtmxDetails


def staff_login_required(view: View) -> View:
    """login_required, except that an htmx request (a poll after the session expired)
    sends the whole browser to sign in instead of swapping the sign-in page into a panel.

    Head office also needs its second factor (django-otp): a head-office session that has
    not proved a one-time code this session is sent to prove one (or to set one up) before
    any staff page, so a password alone never opens what head office may see.
    """

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and request.htmx:
            return _browser_to(settings.LOGIN_URL, request)
        if request.user.is_authenticated and needs_second_factor(request):
            return _browser_to("two-factor-verify", request)
        return login_required(view)(request, *args, **kwargs)

    return wrapped


def needs_second_factor(request: HttpRequest) -> bool:
    """A signed-in head-office user who has not proved a one-time code in this session."""
    verified = getattr(request.user, "is_verified", None)
    return not (verified is not None and verified()) and user_is_head_office(user=request.user)


def _browser_to(url_name: str, request: HtmxHttpRequest) -> HttpResponse:
    """Send the browser to a page with ?next= this one: the whole window for htmx."""
    page = (request.htmx.current_url_abs_path if request.htmx else None) or request.get_full_path()
    target = f"{resolve_url(url_name)}?{urlencode({'next': page})}"
    if request.htmx:
        return HttpResponseClientRedirect(target)
    return redirect(target)


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
    """The store named in the URL, if this user may see it.

    Looked up among the user's own stores only, so store staff learn nothing about other
    stores: another store's code and a code that names no store are the same 403. Head
    office (who may see every store) gets 404 for a code that names none.
    """
    store = stores_for_user(user=request.user).select_related("partner").filter(code=code).first()
    if store is not None:
        log_context(store=store.code)
        return store
    if user_is_head_office(user=request.user):
        raise Http404("No such store.")
    raise PermissionDenied("You are not staff of this store.")
