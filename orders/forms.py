"""Forms of the customer's upgrade journey (public pages, no sign-in).

Every choice is checked against an in-memory list of choices, never looked up in the
database with the raw input, so odd input (NUL bytes, huge strings) is a form error
rather than a database error. The account number and postcode are checked together
and refused with one message, so the form does not say which of the two was wrong.
"""

import re
import secrets

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from customers.models import Customer
from customers.services.registration import customer_verify
from inventory.models import SKU, Launch
from orders.models import Order
from orders.selectors.order_search import OrderFilters
from stores.models import Partner, Store

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
NO_MATCH = "We couldn't match that account number and postcode. Please check both and try again."
TOO_MANY = (
    "Too many tries with that account number from here. Please wait {minutes} minutes, then try again; "
    "your bill shows your account number and the postcode we hold."
)


def _store_choices() -> list[tuple[str, str]]:
    return [
        (s.code, f"{s.name} ({s.code})") for s in Store.objects.filter(is_active=True).only("code", "name")
    ]


def new_form_token() -> str:
    """A one-time token for the order form: a double click sends it twice, one order results."""
    return secrets.token_urlsafe(24)


class FormTokenField(forms.Field):
    """The hidden one-time token. A mangled token is dropped, not an error the customer can't see."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def to_python(self, value) -> str:
        value = value if isinstance(value, str) else ""
        return value if TOKEN_RE.fullmatch(value) else ""


def _locked_out() -> forms.ValidationError:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return forms.ValidationError(TOO_MANY.format(minutes=minutes), code="locked_out")


class CustomerIdentityForm(forms.Form):
    """Who is asking: the account number plus the postcode as a second factor."""

    account_number = forms.CharField(
        label="Account number",
        max_length=16,
        help_text="As printed on your bill, for example D0001234.",
        error_messages={
            "required": "Please enter your account number.",
            "max_length": "Account numbers are at most 16 characters long.",
        },
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}
        ),
    )
    postcode = forms.CharField(
        label="Postcode",
        max_length=10,
        help_text="The postcode of your billing address.",
        error_messages={
            "required": "Please enter your postcode.",
            "max_length": "That is too long for a postcode.",
        },
        widget=forms.TextInput(attrs={"autocomplete": "postal-code", "autocapitalize": "characters"}),
    )

    customer: Customer | None = None

    def __init__(self, *args, request: HttpRequest | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self):
        cleaned = super().clean()
        account_number, postcode = cleaned.get("account_number"), cleaned.get("postcode")
        if account_number and postcode:
            # Guessing postcodes is a sign-in attempt: django-axes counts failures per
            # (account number, IP address) and pauses that pair after a few, as for staff.
            credentials = {"username": f"customer:{account_number.strip().upper()}"}
            if self.request is not None and not AxesProxyHandler.is_allowed(self.request, credentials):
                raise _locked_out()
            self.customer = customer_verify(account_number=account_number, postcode=postcode)
            if self.customer is None:
                if self.request is not None:
                    user_login_failed.send(sender=type(self), credentials=credentials, request=self.request)
                    if getattr(self.request, "axes_locked_out", False):
                        # This failure reached the limit. Say so here, in the customer's words:
                        # left set, the flag has AxesMiddleware swap this page for the staff
                        # sign-in page's lockout (429, "ask head office").
                        self.request.axes_locked_out = False
                        raise _locked_out()
                raise forms.ValidationError(NO_MATCH, code="no_match")
        return cleaned


class RegistrationForm(CustomerIdentityForm):
    """Register interest before the window opens: preferred model and where to get it."""

    preferred_sku = forms.ChoiceField(
        label="Which model would you like?",
        error_messages={
            "required": "Please choose a model.",
            "invalid_choice": "Please choose one of the models listed.",
        },
    )
    preferred_store = forms.ChoiceField(
        label="Where would you like to get it?",
        required=False,
        error_messages={"invalid_choice": "Please choose one of the stores listed, or home delivery."},
    )

    def __init__(self, *args, launch: Launch, **kwargs):
        super().__init__(*args, **kwargs)
        self.skus = {sku.code: sku for sku in launch.skus.all()}
        self.fields["preferred_sku"].choices = [("", "Choose a model")] + [
            (code, sku.name) for code, sku in self.skus.items()
        ]
        self.fields["preferred_store"].choices = [("", "Home delivery")] + _store_choices()


class OrderForm(CustomerIdentityForm):
    """Place the upgrade order in the window: model, and delivery or collection in a store."""

    sku = forms.ChoiceField(
        label="Model",
        error_messages={
            "required": "Please choose a model.",
            "invalid_choice": "Please choose one of the models listed.",
        },
    )
    fulfilment = forms.ChoiceField(
        label="How would you like to get it?",
        choices=Order.Fulfilment.choices,
        initial=Order.Fulfilment.DELIVERY,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose home delivery or collection in a store.",
            "invalid_choice": "Please choose home delivery or collection in a store.",
        },
    )
    store = forms.ChoiceField(
        label="Store to collect from",
        required=False,
        help_text="Only needed if you collect in a store.",
        error_messages={"invalid_choice": "Please choose one of the stores listed."},
    )
    # Sent back with the form; the same token twice (a double click, a resubmitted page)
    # is the same order, through admission's idempotency key.
    token = FormTokenField()

    def __init__(self, *args, launch: Launch, **kwargs):
        super().__init__(*args, **kwargs)
        self.skus = {sku.code: sku for sku in launch.skus.all()}
        self.fields["sku"].choices = [("", "Choose a model")] + [
            (code, sku.name) for code, sku in self.skus.items()
        ]
        self.fields["store"].choices = [("", "Choose a store")] + _store_choices()
        if not self.is_bound:
            self.initial.setdefault("token", new_form_token())
            if len(self.skus) == 1:
                self.initial.setdefault("sku", next(iter(self.skus)))
        elif not TOKEN_RE.fullmatch(str(self.data.get("token", ""))):
            # No usable token came back: use a fresh one, so this submit and the form shown
            # again after an error are still double-submit safe.
            self.data = self.data.copy()
            self.data["token"] = new_form_token()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("fulfilment") == Order.Fulfilment.COLLECT and not cleaned.get("store"):
            self.add_error("store", "Please choose the store you will collect from.")
        if cleaned.get("fulfilment") == Order.Fulfilment.DELIVERY:
            cleaned["store"] = ""
        return cleaned


class AvailabilityForm(forms.Form):
    """The order form's choice of pool, read by the availability panel (htmx, GET)."""

    sku = forms.CharField(required=False, max_length=32)
    fulfilment = forms.CharField(required=False, max_length=16)
    store = forms.CharField(required=False, max_length=16)


class NoticeSettingsForm(forms.Form):
    """Head office's stock notice settings of a launch (the launch overview page)."""

    notice_factor = forms.DecimalField(
        label="Customers told per freed unit",
        min_value=0,
        max_value=10,
        max_digits=4,
        decimal_places=2,
        help_text="1.5 tells 60 customers about 40 freed units; 0 turns stock notices off.",
    )
    claim_window_minutes = forms.IntegerField(
        label="Claim window (minutes)",
        min_value=1,
        max_value=7 * 24 * 60,
        help_text="How long freed units are held for the customers told, before they go to the next ones.",
    )


class RehearsalForm(forms.Form):
    """Head office's rehearsal: bounded, so a typo cannot start an hour-long flood."""

    launch = forms.ChoiceField(choices=())
    duration = forms.IntegerField(min_value=5, max_value=600, initial=60, help_text="seconds of arrivals")
    peak_rate = forms.IntegerField(
        min_value=1, max_value=20_000, initial=200, help_text="arrivals per second at opening"
    )
    show_up = forms.FloatField(
        min_value=0.01, max_value=1.0, initial=0.6, help_text="share of registered customers who come"
    )
    jitter = forms.BooleanField(
        required=False, initial=True, help_text="retries wait Retry-After stretched at random"
    )
    fair_start = forms.IntegerField(
        min_value=0, max_value=600, required=False, help_text="seconds (blank: the launch's own)"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["launch"].choices = [
            (slug, name) for slug, name in Launch.objects.values_list("slug", "name")
        ]


# --- Staff's orders pages ----------------------------------------------------------------

# A reference or an account number: short, letters and digits (either may carry a dash).
SEARCH_SHAPE = re.compile(r"[A-Z0-9-]{1,16}")
RESEND_TOKEN = re.compile(r"[0-9a-f]{32}")
NOT_A_SEARCH = "Search by an order reference or an account number: up to 16 letters and digits."


def _coded(model, **filters) -> dict[str, int]:
    """code -> id of a small table, read once per form: choices are checked in memory."""
    return dict(model.objects.filter(**filters).order_by("code").values_list("code", "pk"))


class OrderFilterForm(forms.Form):
    """The orders page's filters and search (GET). Each choice is a code from a list read
    here, so any other value is a form error; the cursor is a positive sequence."""

    q = forms.CharField(label="Reference or account number", required=False, max_length=40)
    launch = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Order.Status.choices])
    sku = forms.ChoiceField(label="SKU", required=False)
    store = forms.ChoiceField(required=False)
    channel = forms.ChoiceField(required=False, choices=[("", "Any channel"), *Order.Channel.choices])
    partner = forms.ChoiceField(required=False)
    before = forms.IntegerField(required=False, min_value=1, max_value=2**62, widget=forms.HiddenInput)

    def __init__(self, data=None, *, store: Store | None = None):
        super().__init__(data)
        self.launches = dict(Launch.objects.order_by("-opens_at").values_list("slug", "pk"))
        self.skus = _coded(SKU)
        self.partners = _coded(Partner, kind=Partner.Kind.RETAILER)
        self.fields["launch"].choices = [("", "Every launch"), *((s, s) for s in self.launches)]
        self.fields["sku"].choices = [("", "Any SKU"), *((c, c) for c in self.skus)]
        self.fields["partner"].choices = [("", "Any partner"), *((c, c) for c in self.partners)]
        # Store staff see their own store's orders only: no store to choose.
        self.store = store
        if store is None:
            self.stores = _coded(Store)
            self.fields["store"].choices = [("", "Any store"), *((c, c) for c in self.stores)]
        else:
            del self.fields["store"]

    def clean_q(self) -> str:
        value = "".join(self.cleaned_data.get("q", "").split()).upper()
        if value and not SEARCH_SHAPE.fullmatch(value):
            raise forms.ValidationError(NOT_A_SEARCH, code="not_a_search")
        return value

    def filters(self) -> OrderFilters:
        data = self.cleaned_data
        return OrderFilters(
            launch_id=self.launches.get(data.get("launch") or ""),
            status=data.get("status") or "",
            sku_id=self.skus.get(data.get("sku") or ""),
            store_id=self.store.pk if self.store is not None else self.stores.get(data.get("store") or ""),
            channel=data.get("channel") or "",
            partner_id=self.partners.get(data.get("partner") or ""),
            query=data.get("q") or "",
        )


class OrderCancelForm(forms.Form):
    """Cancelling an order cannot be undone: a reason and an explicit yes."""

    reason = forms.CharField(
        max_length=200, help_text="Kept on the order; the customer is told the order is cancelled."
    )
    confirm = forms.BooleanField(
        label="Yes, cancel this order. This cannot be undone.",
        error_messages={"required": "Tick the box to confirm the cancellation."},
    )


class MessageResendForm(forms.Form):
    """Sending one of the order's emails again. The token names this form, so a double
    click queues one copy."""

    message = forms.IntegerField(min_value=1, max_value=2**62, widget=forms.HiddenInput)
    token = forms.CharField(max_length=32, widget=forms.HiddenInput)
    confirm = forms.BooleanField(
        label="Yes, send this email again.",
        error_messages={"required": "Tick the box to confirm sending the email again."},
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        if not RESEND_TOKEN.fullmatch(token):
            raise forms.ValidationError("This form has expired: open the order again.", code="bad_token")
        return token
