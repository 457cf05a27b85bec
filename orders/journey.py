"""The customer's upgrade journey: public, server-rendered pages with htmx.

Before a launch's window the customer registers interest; in the window they order; the
order's status page shows their exact place in the queue and refreshes itself. Every
business step is a service call (registration_create, order_admit); refusals become form
errors, never a 500. The order reference (12 random characters) is the credential for
the status page, so that page shows nothing personal beyond the first name.
"""

import datetime
from dataclasses import dataclass

from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.logcontext import log_context
from config.metrics import order_refused, orders_admitted
from customers.services.registration import RegistrationRefused, registration_create
from inventory.models import SKU, Launch
from inventory.selectors import delivery_next, location_online_pool_id
from orders.codes import ErrorCode
from orders.forms import AvailabilityForm, OrderForm, RegistrationForm, new_form_token
from orders.models import Order
from orders.selectors.availability import PoolAvailability, pool_availability
from orders.selectors.positions import order_queue_position
from orders.services.admission import AdmissionRefused, order_admit
from orders.services.catalogue import StoreInfo, store_info
from orders.services.group_commit import BatchFailed, grouped_admission_enabled, order_admit_grouped
from orders.services.notices import (
    ClaimRefused,
    stock_notice_claim,
    stock_notice_claim_held,
    stock_notice_held_for,
    stock_notice_offer,
)
from stores.access import HtmxHttpRequest
from stores.models import Store

BEFORE, OPEN, CLOSED = "before", "open", "closed"


def _phase(launch: Launch, now: datetime.datetime) -> str:
    if now < launch.opens_at:
        return BEFORE
    if now < launch.closes_at:
        return OPEN
    return CLOSED


def _launch(slug: str) -> Launch:
    return get_object_or_404(Launch.objects.prefetch_related("skus"), slug=slug)


# --- pages ---------------------------------------------------------------------------


@require_GET
def launch_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    launches = list(Launch.objects.filter(closes_at__gt=now).order_by("opens_at"))
    rows = [{"launch": launch, "phase": _phase(launch, now)} for launch in launches]
    return render(request, "journey/launch_list.html", {"rows": rows})


def _detail_context(launch: Launch, *, form=None, **extra) -> dict:
    now = timezone.now()
    phase = _phase(launch, now)
    context = {"launch": launch, "phase": phase, "form": form}
    if form is None and phase == BEFORE:
        context["form"] = RegistrationForm(launch=launch)
    elif form is None and phase == OPEN:
        context["form"] = OrderForm(launch=launch)
    if phase == OPEN:
        context["online"] = pool_availability(
            launch=launch,
            pool_id=location_online_pool_id(),
            skus=list(launch.skus.all()),
            where="home delivery",
        )
        # Nothing left online for any model: the order form's button says what it does.
        context["all_sold_out"] = all(pool.sold_out for pool in context["online"])
    context.update(extra)
    return context


@require_GET
def launch_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Registration form before the window, order form in it, a plain notice after."""
    launch = _launch(slug)
    return render(request, "journey/launch_detail.html", _detail_context(launch))


@require_POST
def launch_register(request: HttpRequest, slug: str) -> HttpResponse:
    launch = _launch(slug)
    if _phase(launch, timezone.now()) != BEFORE:
        # The window opened (or closed) while the form was on screen: show today's page.
        messages.info(request, "Registration has closed: ordering for this launch has opened.")
        return redirect("journey-launch", slug=launch.slug)
    form = RegistrationForm(request.POST, launch=launch, request=request)
    if form.is_valid():
        store_code = form.cleaned_data["preferred_store"]
        store = Store.objects.filter(code=store_code, is_active=True).first() if store_code else None
        try:
            if store_code and store is None:  # closed since the form was shown
                raise RegistrationRefused("That store is no longer taking orders.", field="preferred_store")
            registration = registration_create(
                launch=launch,
                customer=form.customer,
                preferred_sku=form.skus[form.cleaned_data["preferred_sku"]],
                preferred_store=store,
            )
        except RegistrationRefused as refused:
            form.add_error(None if refused.field == "__all__" else refused.field, str(refused))
        else:
            return render(
                request,
                "journey/registered.html",
                {
                    "launch": launch,
                    "registration": registration,
                    "first_name": _first_name(form.customer.name),
                },
            )
    return render(request, "journey/launch_detail.html", _detail_context(launch, form=form))


_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady", "rev"}


def _first_name(name: str) -> str:
    """The greeting name: the first word that is not a title ("Ms Jane Doe" -> "Jane")."""
    all_words = name.split()
    words = [w for w in all_words if w.rstrip(".").lower() not in _TITLES]
    if not words or (len(words) == 1 and len(all_words) > 1):  # "Dr Khan": a surname, not a first name
        return "there"
    return words[0]


# Words for each refusal the web page can meet.
_REFUSALS: dict[ErrorCode, tuple[str | None, str]] = {
    ErrorCode.NOT_FOUND: (None, "This launch no longer exists."),
    ErrorCode.LAUNCH_NOT_OPEN: (None, "Ordering for this launch is not open right now."),
    ErrorCode.UNKNOWN_SKU: (
        "sku",
        "That model is not part of this launch. Please choose one of the models listed.",
    ),
    ErrorCode.NOT_ELIGIBLE: (
        None,
        "We can't find a registration of interest for this launch on that account, or the account "
        "can't be upgraded at the moment. Only customers who registered before ordering opened can order.",
    ),
    ErrorCode.PERMISSION_DENIED: (None, "That store can't take this order. Please choose another store."),
}


@require_POST
def launch_order(request: HttpRequest, slug: str) -> HttpResponse:
    """Admit the order through the same service as the API; a refusal is a form error."""
    launch = _launch(slug)
    if _phase(launch, timezone.now()) != OPEN:
        messages.info(request, "Ordering for this launch is not open right now, so nothing was ordered.")
        return redirect("journey-launch", slug=launch.slug)
    form = OrderForm(request.POST, launch=launch, request=request)
    extra: dict = {}
    if form.is_valid():
        data = form.cleaned_data
        held = _held_unit(launch, form.customer.pk, data)
        if held is not None:
            return redirect("journey-order", reference=held.reference)
        # Group commit when it is on (as the partner API); the previous path otherwise.
        admit = order_admit_grouped if grouped_admission_enabled() else order_admit
        try:
            admission = admit(
                launch=launch.slug,
                customer=form.customer.account_number,
                sku=data["sku"],
                fulfilment=data["fulfilment"],
                store=data["store"] or None,
                channel=Order.Channel.ONLINE,
                idempotency_key=data["token"] or None,
                idempotency_scope="web",
            )
        except AdmissionRefused as refused:
            order_refused(refused.code.value)
            extra = _refusal_to_form(form, refused)
        except (BatchFailed, DatabaseError):
            order_refused("database_unavailable")
            form.add_error(
                None, "We couldn't take your order just now and nothing was ordered. Please try again."
            )
            context = _detail_context(launch, form=form)
            return render(request, "journey/launch_detail.html", context, status=503)
        else:
            if not admission.replayed:
                orders_admitted(path="web")
            log_context(launch=launch.slug, order=admission.order.reference)
            return redirect("journey-order", reference=admission.order.reference)
    return render(request, "journey/launch_detail.html", _detail_context(launch, form=form, **extra))


def _held_unit(launch: Launch, customer_id: int, data: dict) -> Order | None:
    """The order form honours a stock notice: a customer told that a unit is held for them,
    ordering that SKU from that pool, gets the held unit (as their link would give it).
    None when nothing is held for this order, or the held units went meanwhile: then the
    order is admitted as any other."""
    choice = _form_choice(launch, data)
    if choice is None or choice.pool_id is None:
        return None
    notice = stock_notice_held_for(
        launch_id=launch.pk, customer_id=customer_id, sku_id=choice.sku.pk, pool_id=choice.pool_id
    )
    if notice is None:
        return None
    try:
        return stock_notice_claim_held(notice=notice)
    except ClaimRefused:
        return None


def _refusal_to_form(form: OrderForm, refused: AdmissionRefused) -> dict:
    """Put the refusal on the form; return what the page shows besides (an order link)."""
    reference = refused.details.get("reference") if isinstance(refused.details, dict) else None
    if refused.code == ErrorCode.ALREADY_ORDERED:
        form.add_error(
            None,
            f"You already have an order for this launch (reference {reference}). "
            "Each customer can order once; you can follow that order's progress below.",
        )
        return {"existing_reference": reference}
    if refused.code == ErrorCode.IDEMPOTENCY_CONFLICT:
        # The same form was sent before with other details. Say so without naming that
        # order (whoever holds this token need not own it) and hand out a fresh token.
        form.data = form.data.copy()
        form.data["token"] = new_form_token()
        form.add_error(
            None,
            "This form was already sent with different details. Please check your details and send it again.",
        )
        return {}
    if refused.code == ErrorCode.VALIDATION_ERROR:
        for field, messages in (refused.details or {}).items():
            target = field if field in form.fields else None
            for message in messages if isinstance(messages, list) else [messages]:
                form.add_error(target, str(message))
        if not refused.details:
            form.add_error(None, refused.message)
        return {}
    field, message = _REFUSALS.get(refused.code, (None, "We couldn't take this order. Please try again."))
    form.add_error(field, message)
    return {}


@require_GET
def launch_availability(request: HttpRequest, slug: str) -> HttpResponse:
    """The order form's availability panel for the chosen model and pool (htmx fragment)."""
    launch = _launch(slug)
    form = AvailabilityForm(request.GET)
    chosen = None
    if form.is_valid() and _phase(launch, timezone.now()) == OPEN:
        chosen = _chosen_availability(launch, form.cleaned_data)
    context = _detail_context(launch, chosen=chosen)
    return render(request, "journey/launch_detail.html#availability", context)


@dataclass(frozen=True)
class FormChoice:
    """The SKU and pool an order form names; `store` is the collection store (None: delivery)."""

    sku: SKU
    pool_id: int | None
    store: StoreInfo | None


def _form_choice(launch: Launch, data: dict) -> FormChoice | None:
    """What the form's SKU, fulfilment and store name, or None when one of them is not there
    (the availability panel and the held-unit check read the choice the same way)."""
    sku = {s.code: s for s in launch.skus.all()}.get(data["sku"])
    if sku is None:
        return None
    if data["fulfilment"] == Order.Fulfilment.COLLECT:
        info = store_info(code=data["store"]) if data["store"] else None
        return FormChoice(sku=sku, pool_id=info.location_id, store=info) if info else None
    return FormChoice(sku=sku, pool_id=location_online_pool_id(), store=None)


def _chosen_availability(launch: Launch, data: dict) -> PoolAvailability | None:
    choice = _form_choice(launch, data)
    if choice is None:
        return None
    if choice.store is not None:
        store = Store.objects.only("name").filter(pk=choice.store.id).first()
        if store is None:
            return None
        where = f"collection at {store.name}"
    else:
        where = "home delivery"
    return pool_availability(launch=launch, pool_id=choice.pool_id, skus=[choice.sku], where=where)[0]


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    done: bool
    current: bool = False


def _progress_steps(order: Order) -> list[Step]:
    """Ordered -> reserved -> ready -> collected (collect orders), or ordered -> reserved ->
    sent (home delivery); the first step not done is the current one."""
    held = order.status in (Order.Status.ALLOCATED, Order.Status.FULFILLED)
    done = order.status == Order.Status.FULFILLED
    if order.fulfilment == Order.Fulfilment.COLLECT:
        steps = [
            ("ordered", "Ordered", True),
            ("reserved", "Reserved", held),
            ("ready", "Ready to collect", held),
            ("collected", "Collected", done),
        ]
    else:
        steps = [("ordered", "Ordered", True), ("reserved", "Reserved", held), ("sent", "Sent", done)]
    current = next((key for key, _, is_done in steps if not is_done), None)
    return [Step(key, label, is_done, key == current) for key, label, is_done in steps]


@never_cache
@require_http_methods(["GET", "HEAD"])
def order_status(request: HtmxHttpRequest, reference: str) -> HttpResponse:
    """The order's status page, or (for htmx polling) just its live panel."""
    order = get_object_or_404(
        Order.objects.select_related("launch", "sku", "store", "customer").only(
            "sequence",
            "reference",
            "status",
            "fulfilment",
            "wait_number",
            "fair_draw",
            "pool_id",
            "sku_id",
            "launch_id",
            "store_id",
            "customer_id",
            "collect_by",
            "created_at",
            "launch__name",
            "launch__slug",
            "launch__fair_start_seconds",
            "sku__name",
            "sku__code",
            "store__name",
            "store__code",
            "customer__name",
        ),
        reference=reference,
    )
    waiting = order.status in (Order.Status.QUEUED, Order.Status.WAITLISTED)
    position = order_queue_position(order=order) if waiting else None
    next_delivery = None
    if position is not None and position.units_left <= 0:
        next_delivery = delivery_next(launch_id=order.launch_id, sku_id=order.sku_id)
    context = {
        "order": order,
        "first_name": _first_name(order.customer.name),
        "waiting": waiting,
        "position": position,
        "sold_out": position is not None and position.units_left <= 0,
        "next_delivery": next_delivery,
        "where": (
            f"collection at {order.store.name}"
            if order.fulfilment == Order.Fulfilment.COLLECT and order.store
            else "home delivery"
        ),
        "status_url": reverse("journey-order", kwargs={"reference": order.reference}),
        "steps": _progress_steps(order),
        # The panel keeps refreshing until nothing more can happen to the order.
        "finished": order.status in (Order.Status.FULFILLED, Order.Status.CANCELLED),
    }
    template = "journey/order_status.html"
    if request.htmx:
        template += "#status-panel"
    return render(request, template, context)


# --- a stock notice's claim link ------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def claim(request: HttpRequest, token: str) -> HttpResponse:
    """The offer behind a stock notice's link (GET, which changes nothing: mail scanners
    open links), and its button, which places the upgrade order on a held unit (POST).

    Every refusal is its own page with its own status and changes nothing: a link that was
    not ours or was changed 400, an offer that ended 410, units gone or an order already
    placed 409.
    """
    try:
        if request.method == "POST":
            order = stock_notice_claim(token=token)
            return redirect("journey-order", reference=order.reference)
        offer = stock_notice_offer(token=token)
    except ClaimRefused as refused:
        return render(
            request,
            "journey/claim_refused.html",
            {"problem": refused.problem.value, "message": refused.message, "reference": refused.reference},
            status=refused.problem.http_status,
        )
    window = offer.window
    store = window.pool.store
    return render(
        request,
        "journey/claim.html",
        {
            "launch": offer.notice.launch,
            "first_name": _first_name(offer.notice.customer.name),
            "sku": window.sku,
            "where": f"collection at {store.name}" if store is not None else "home delivery",
            "closes_at": window.closes_at,
            "left": offer.left,
        },
    )
