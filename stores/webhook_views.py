"""Head office's webhook pages: every partner's endpoints, and each one's delivery log.

Thin over stores.services.webhooks (the only writer of the webhook tables) and
stores.selectors.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from stores.access import head_office_required
from stores.forms import EndpointForm, ReplayForm
from stores.models import WebhookDelivery, WebhookEndpoint
from stores.selectors import webhook_deliveries, webhook_endpoint_counts
from stores.services.webhooks import (
    EndpointDisabled,
    EndpointInvalid,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_replay,
)


@head_office_required
@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Every partner's endpoints, and a form to add one for a partner."""
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = webhook_endpoint_create(
                partner=form.cleaned_data["partner"],
                url=form.cleaned_data["url"],
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
            )
        except EndpointInvalid as exc:
            for field, problems in exc.errors.items():
                for problem in problems:
                    form.add_error(field if field in form.fields else None, problem)
        else:
            messages.success(
                request, f"Endpoint added. Its secret, for {endpoint.partner.name}: {endpoint.secret}"
            )
            return redirect("webhook-endpoint", pk=endpoint.pk)
    endpoints = list(WebhookEndpoint.objects.select_related("partner").order_by("partner__name", "id"))
    counts = webhook_endpoint_counts(endpoint_ids=[e.pk for e in endpoints])
    rows = [(e, counts[e.pk]) for e in endpoints]
    return render(request, "stores/webhooks.html", {"rows": rows, "form": form})


@head_office_required
@require_GET
def webhook_endpoint(request: HttpRequest, pk: int) -> HttpResponse:
    """One endpoint: its state, actions, and its latest deliveries with their attempts."""
    endpoint = get_object_or_404(WebhookEndpoint.objects.select_related("partner"), pk=pk)
    deliveries = list(webhook_deliveries(endpoint_id=endpoint.pk).prefetch_related("attempt_log")[:50])
    rows = [(d, (list(d.attempt_log.all()) or [None])[-1]) for d in deliveries]
    return render(
        request,
        "stores/webhook_endpoint.html",
        {
            "endpoint": endpoint,
            "rows": rows,
            "counts": webhook_endpoint_counts(endpoint_ids=[endpoint.pk])[endpoint.pk],
            "replay_form": ReplayForm(),
        },
    )


@head_office_required
@require_POST
def webhook_endpoint_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch off, switch on, rotate the secret, or replay a range; back to the endpoint."""
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    action = request.POST.get("action")
    if action in ("disable", "enable"):
        webhook_endpoint_update(
            endpoint=endpoint,
            enabled=action == "enable",
            disabled_by=WebhookEndpoint.DisabledReason.HEAD_OFFICE,
        )
        messages.success(request, "Switched on." if action == "enable" else "Switched off.")
    elif action == "rotate":
        endpoint = webhook_endpoint_rotate_secret(endpoint=endpoint)
        messages.success(
            request,
            f"New secret: {endpoint.secret}. The old one signs too until "
            f"{endpoint.previous_secret_expires_at:%d %b %H:%M}.",
        )
    elif action == "replay":
        form = ReplayForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the moment to replay from, such as 2008-07-11 08:02.")
        else:
            try:
                n = webhook_replay(endpoint=endpoint, since=form.cleaned_data["since"])
            except (EndpointDisabled, ValueError) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"{n} event(s) queued again, each with its webhook-id.")
    else:
        messages.error(request, "Unknown action.")
    return redirect("webhook-endpoint", pk=endpoint.pk)


@head_office_required
@require_POST
def webhook_delivery_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    try:
        webhook_delivery_retry(delivery=delivery)
    except EndpointDisabled as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Delivery {delivery.pk} will be tried again now.")
    return redirect("webhook-endpoint", pk=delivery.endpoint_id)
