"""Staff pages: where a user lands after sign-in, and a store's live page.

The store page reads through the selectors of inventory (stock, deliveries) and orders
(walk-in queue, collect orders) and acts through orders' services (walk-in queue,
collection): entry points may use any app's services and selectors.

One view serves the whole store page or, for htmx, just its live panel; every action is
an hx-post that answers with the updated panel plus the outcome (swapped out of band into
a notice area above the panel, so the next poll does not wipe it), or a redirect with a
message when the browser posts without htmx.
"""

import re
from base64 import b32encode
from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from inventory.models import Launch
from inventory.selectors import (
    launch_current,
    launch_for_store_page,
    location_of_store,
    store_deliveries,
    store_stock,
)
from inventory.services import InsufficientStock
from orders.models import Order
from orders.selectors.store_page import store_collect, store_collect_ready, store_walkin_queue
from orders.services.collection import NotCollectable, order_collect
from orders.services.walkin import WalkInError, ticket_issue, ticket_pass_over, ticket_serve_next
from stores.access import HtmxHttpRequest, staff_login_required, store_for_staff
from stores.models import Store
from stores.selectors import stores_for_user, user_is_head_office
from stores.services import (
    second_factor_verify,
    totp_device_confirm,
    totp_device_unsaved,
    totp_key_new,
    user_has_second_factor,
)

SETUP_KEY = "two_factor_setup_key"  # the secret being set up, in the session until proved

TEMPLATE = "stores/store_detail.html"
# Order references are short upper-case letters and digits (orders.services.admission).
REFERENCE_SHAPE = re.compile(r"[A-Z0-9]{1,16}")


@dataclass(frozen=True)
class Notice:
    """The outcome of a staff action, shown above the live panel."""

    text: str
    level: str = "success"  # or "error"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Anonymous users sign in; head office gets the launch, store staff their store."""
    if not request.user.is_authenticated:
        return redirect("login")
    if user_is_head_office(user=request.user):
        launch = launch_current()
        if launch is not None:
            return redirect("launch-overview", slug=launch.slug)
        return redirect("launch-list")
    store = stores_for_user(user=request.user).order_by("code").first()
    if store is not None:
        return redirect("store-detail", code=store.code)
    return render(request, "stores/no_store.html", status=403)


def _live_context(*, store: Store, launch: Launch | None) -> dict:
    """What the live panel shows. A handful of aggregate queries, none per order or ticket."""
    collect = store_collect(store=store, launch=launch)
    stock_lines = store_stock(store=store, launch=launch)
    ready = store_collect_ready(store=store, launch=launch)
    location = location_of_store(store=store)
    return {
        "store": store,
        "launch": launch,
        "stock_lines": stock_lines,
        # The walk-in sale of a SKU is refused while collect orders are still owed it.
        "walkin_lines": [
            {"sku": line.sku, "stock": line.stock, "owed": collect.owed_by_sku.get(line.sku.pk, 0)}
            for line in stock_lines
        ],
        "queue": store_walkin_queue(store=store, launch=launch),
        "collect": collect.counts,
        "collect_waiting": collect.waiting_total,
        "collect_ready": ready,
        "collect_ready_more": max(collect.counts[Order.Status.ALLOCATED] - len(ready), 0),
        "deliveries": store_deliveries(location=location, to_receive_only=True, limit=10) if location else [],
    }


@require_GET
@staff_login_required
def store_detail(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The store's page, or (for htmx polling) just its live panel."""
    store = store_for_staff(request, code)
    context = _live_context(store=store, launch=launch_for_store_page())
    template = TEMPLATE
    if request.htmx:
        template += "#live-panel"
    return render(request, template, context)


def _action_done(
    request: HtmxHttpRequest, store: Store, launch: Launch | None, notice: Notice
) -> HttpResponse:
    """htmx: the refreshed panel and the notice. Otherwise: a message and back to the page."""
    if request.htmx:
        context = _live_context(store=store, launch=launch) | {"notice": notice}
        return render(request, TEMPLATE + "#action-result", context)
    level = messages.ERROR if notice.level == "error" else messages.SUCCESS
    messages.add_message(request, level, notice.text)
    return redirect("store-detail", code=store.code)


@require_POST
@staff_login_required
def store_ticket_issue(request: HtmxHttpRequest, code: str) -> HttpResponse:
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    if launch is None:
        notice = Notice("No launch is set up, so there is no queue to join.", "error")
    else:
        ticket = ticket_issue(launch=launch, store=store)
        notice = Notice(f"Ticket #{ticket.number} issued. Write it on the customer's ticket.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_serve_next(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Sell one unit of the chosen SKU to the first waiting ticket."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    # Matched against the launch's own SKUs in Python: any string at all (NUL bytes
    # included, which PostgreSQL refuses) is just "not one of ours".
    skus = {s.code: s for s in launch.skus.all()} if launch is not None else {}
    sku = skus.get(request.POST.get("sku", ""))
    if launch is None:
        notice = Notice("No launch is set up, so there is nothing to sell.", "error")
    elif sku is None:
        notice = Notice("Choose a model of this launch to sell.", "error")
    else:
        try:
            ticket = ticket_serve_next(launch=launch, store=store, sku=sku, user=request.user)
        except WalkInError as exc:
            notice = Notice(f"Not sold: {exc}", "error")
        else:
            if ticket is None:
                notice = Notice("Nobody is waiting: issue a ticket first.", "error")
            else:
                notice = Notice(f"Now serving #{ticket.number}: one {sku.code} sold.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_ticket_pass_over(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The first waiting walk-in leaves without a unit, and the queue moves on."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    ticket = ticket_pass_over(launch=launch, store=store, user=request.user) if launch is not None else None
    if ticket is None:
        notice = Notice("Nobody is waiting.", "error")
    else:
        notice = Notice(f"Ticket #{ticket.number} left without a unit; no stock moved.")
    return _action_done(request, store, launch, notice)


@require_POST
@staff_login_required
def store_order_collect(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Hand a held unit over to the customer who came for their click-and-collect order."""
    store = store_for_staff(request, code)
    launch = launch_for_store_page()
    reference = request.POST.get("order", "").strip().upper()
    if not REFERENCE_SHAPE.fullmatch(reference):
        reference = ""  # never sent to the database: it cannot be a reference
    # Only this store's collect orders: another store's reference is "not here", never a 500.
    order = (
        Order.objects.filter(reference=reference, store=store, fulfilment=Order.Fulfilment.COLLECT)
        .select_related("customer", "sku")
        .first()
        if reference
        else None
    )
    if order is None:
        notice = Notice(
            f"No click-and-collect order {reference or 'with that reference'} is held at this store.", "error"
        )
    else:
        try:
            order_collect(order=order, user=request.user)
        except NotCollectable as exc:
            notice = Notice(str(exc), "error")
        except InsufficientStock:
            notice = Notice(f"Order {order.reference} has no unit held here; ask head office.", "error")
        else:
            notice = Notice(
                f"Order {order.reference} collected by {order.customer.name}: one {order.sku.code}."
            )
    return _action_done(request, store, launch, notice)


# --- Sign-in: lockout (django-axes) and head office's second factor (django-otp) -------


def signin_locked_out(request: HttpRequest, response=None, credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer once a (username, IP address) pair has failed too often (429)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    form = AuthenticationForm(request, data=None)
    return render(
        request,
        "registration/login.html",
        {
            "form": form,
            "locked_out": (
                f"Too many failed sign-ins for this username from this address. "
                f"Wait {minutes} minutes, then try again; if you have forgotten your password, ask head office."
            ),
        },
        status=429,
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return reverse("home")


class TokenForm(forms.Form):
    otp_token = forms.CharField(
        label="Code",
        max_length=16,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )

    def clean_otp_token(self) -> str:
        return "".join(self.cleaned_data["otp_token"].split())


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """Head office proves a one-time code (authenticator or recovery code) once per session."""
    if not user_is_head_office(user=request.user):
        return redirect("home")
    if not user_has_second_factor(user=request.user):
        return redirect(f"{reverse('two-factor-setup')}?{urlencode({'next': _safe_next(request)})}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = second_factor_verify(user=request.user, token=form.cleaned_data["otp_token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_safe_next(request))
        form.add_error("otp_token", "That code is not right, or was already used. Try the newest code.")
    return render(
        request,
        "registration/two_factor_verify.html",
        {"form": form, "next": _safe_next(request)},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the code, prove one code, keep the recovery codes.

    Open to head office that has no second factor yet (the first sign-in), or that has
    proved one this session (to move to a new phone).
    """
    user = request.user
    if not user_is_head_office(user=user):
        return redirect("home")
    verified = user.is_verified()  # type: ignore[union-attr]
    if not verified and user_has_second_factor(user=user):
        return redirect(f"{reverse('two-factor-verify')}?{urlencode({'next': _safe_next(request)})}")
    key = request.session.get(SETUP_KEY)
    if not isinstance(key, str) or request.method == "GET":
        key = request.session[SETUP_KEY] = totp_key_new()
    device = totp_device_unsaved(user=user, key=key)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        confirmed = totp_device_confirm(user=user, key=key, token=form.cleaned_data["otp_token"])
        if confirmed is not None:
            totp, codes = confirmed
            del request.session[SETUP_KEY]
            otp_login(request, totp)
            return render(
                request, "registration/two_factor_codes.html", {"codes": codes, "next": _safe_next(request)}
            )
        form.add_error(
            "otp_token", "That code is not right. Check the phone's clock and try the newest code."
        )
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "next": _safe_next(request),
            "secret": b32encode(device.bin_key).decode(),
            # An inline SVG: no image request, nothing for the Content-Security-Policy to allow.
            "qr_svg": mark_safe(  # noqa: S308 - segno's own SVG of our own URL
                segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#1b1f24", light="#ffffff")
            ),
        },
        status=400 if form.errors else 200,
    )
