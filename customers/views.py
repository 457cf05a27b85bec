"""Head office's customer lookup and campaign pages, and the public unsubscribe link.

Thin: forms validate, services act, selectors read. Every page but unsubscribe is for
head office only.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from config.inputs import clean_text
from customers import selectors
from customers.forms import CampaignPreviewForm, CampaignStartForm
from customers.models import Campaign, Customer, Message
from customers.services.campaigns import CampaignHasNoRecipients
from customers.services.outbox import customer_unsubscribe, unsubscribe_token_verify
from orders.selectors.campaigns import campaign_audience_count
from orders.selectors.orders import customer_orders
from orders.services.campaigns import campaign_preview, launch_campaign_start
from stores.access import head_office_required


@require_GET
@head_office_required
def customer_lookup(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("q", "")
    query = clean_text(raw, max_length=200)
    if query is None:
        return render(
            request,
            "customers/lookup.html",
            {
                "query": "",
                "results": [],
                "query_error": "Search with up to 200 letters, digits or punctuation.",
            },
            status=400,
        )
    results = list(selectors.customer_search(query=query))
    return render(request, "customers/lookup.html", {"query": query, "results": results})


@require_GET
@head_office_required
def customer_detail(request: HttpRequest, account_number: str) -> HttpResponse:
    customer = get_object_or_404(Customer, account_number=account_number)
    context = {
        "customer": customer,
        "registrations": selectors.customer_registrations(customer=customer),
        "orders": customer_orders(customer=customer),
        "messages_sent": selectors.customer_messages(customer=customer),
    }
    return render(request, "customers/customer_detail.html", context)


@require_http_methods(["GET", "POST"])
@head_office_required
def campaigns(request: HttpRequest) -> HttpResponse:
    """Start a campaign in two steps: the form, then a page that says how many customers
    it emails and starts it only when confirmed. An empty audience is refused at both."""
    form = CampaignStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        launch, kind, audience = (form.cleaned_data[k] for k in ("launch", "kind", "audience"))
        recipients = campaign_audience_count(launch=launch, audience=audience)
        if recipients and request.POST.get("confirm") == "yes":
            try:
                campaign = launch_campaign_start(
                    launch=launch, kind=kind, audience=audience, started_by=request.user
                )
            except CampaignHasNoRecipients as exc:  # the audience emptied since the count
                form.add_error(None, str(exc))
            else:
                flash.success(request, f"Campaign started: {campaign.queued} customers in the outbox.")
                return redirect("campaign-detail", pk=campaign.pk)
        elif recipients:
            return render(
                request,
                "customers/campaign_confirm.html",
                {"form": form, "recipients": recipients, "kind_label": Message.Kind(kind).label},
            )
        else:
            form.add_error(
                None,
                f"Nobody is in the audience “{Campaign.Audience(audience).label}” of {launch} now: "
                "the campaign was not started.",
            )
    status = 400 if request.method == "POST" else 200
    rows = [(c, selectors.campaign_progress(campaign=c)) for c in selectors.campaign_list()[:50]]
    return render(
        request,
        "customers/campaigns.html",
        {"form": form, "rows": rows, "preview_form": CampaignPreviewForm()},
        status=status,
    )


@require_GET
@head_office_required
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("launch", "started_by"), pk=pk)
    template = "customers/campaign_detail.html"
    if getattr(request, "htmx", False):
        template += "#progress"
    return render(
        request, template, {"campaign": campaign, "progress": selectors.campaign_progress(campaign=campaign)}
    )


@require_GET
@head_office_required
# The email's HTML part (inline style attributes, as email needs) shows in a sandboxed
# srcdoc iframe, which inherits this page's policy: style attributes, and only them, allowed.
@csp_update({"style-src-attr": ["'unsafe-inline'"]})
def campaign_preview_view(request: HttpRequest) -> HttpResponse:
    form = CampaignPreviewForm(request.GET or None)
    rendered = None
    if form.is_valid():
        rendered = campaign_preview(
            launch=form.cleaned_data["launch"],
            kind=form.cleaned_data["kind"],
            customer=form.cleaned_data["customer"],
        )
    status = 400 if request.GET and not form.is_valid() else 200
    return render(
        request, "customers/campaign_preview.html", {"form": form, "rendered": rendered}, status=status
    )


# The email's link opens a page that asks (a GET changes nothing: link scanners and mail
# previews open links); its button POSTs. Mail clients unsubscribe with the RFC 8058
# one-click POST to the same address. Neither carries a CSRF token, hence csrf_exempt: the
# signed token is the proof.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    customer_id = unsubscribe_token_verify(token=token)
    if customer_id is None:
        return render(request, "customers/unsubscribe.html", {"valid": False}, status=400)
    if request.method == "GET":
        return render(request, "customers/unsubscribe.html", {"valid": True, "confirm": True})
    customer = customer_unsubscribe(customer_id=customer_id)
    if customer is None:
        return render(request, "customers/unsubscribe.html", {"valid": False}, status=400)
    return render(request, "customers/unsubscribe.html", {"valid": True, "customer": customer})
