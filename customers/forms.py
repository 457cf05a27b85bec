from django import forms

from customers.models import Campaign, Customer, Message
from customers.services.campaigns import CAMPAIGN_AUDIENCES

# The launch model, reached through the relation rather than imported: imports point
# orders -> customers.
Launch = Campaign._meta.get_field("launch").related_model

KIND_CHOICES = [(kind, Message.Kind(kind).label) for kind in CAMPAIGN_AUDIENCES]


class CampaignStartForm(forms.Form):
    launch = forms.ModelChoiceField(queryset=Launch.objects.order_by("-opens_at"), to_field_name="slug")
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    audience = forms.ChoiceField(choices=Campaign.Audience.choices)

    def clean(self):
        data = super().clean()
        kind, audience = data.get("kind"), data.get("audience")
        if kind and audience and audience not in CAMPAIGN_AUDIENCES[kind]:
            raise forms.ValidationError(
                f"A {Message.Kind(kind).label.lower()} email cannot go to "
                f"{Campaign.Audience(audience).label.lower()}."
            )
        return data


class CampaignPreviewForm(forms.Form):
    launch = forms.ModelChoiceField(queryset=Launch.objects.order_by("-opens_at"), to_field_name="slug")
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    customer = forms.CharField(max_length=200, label="Customer account number or email")

    def __init__(self, *args, **kwargs):
        # Shown on the campaigns page beside CampaignStartForm, whose fields have the same
        # names: ids of its own keep every id on that page unique (field names stay as they
        # are, so preview links keep working).
        kwargs.setdefault("auto_id", "id_preview_%s")
        super().__init__(*args, **kwargs)

    def clean_customer(self):
        value = self.cleaned_data["customer"].strip()
        customer = (
            Customer.objects.filter(account_number__iexact=value).first()
            or Customer.objects.filter(email__iexact=value).order_by("pk").first()
        )
        if customer is None:
            raise forms.ValidationError("No customer has that account number or email.")
        return customer
