"""Head office's webhook forms (stores.views): an endpoint for a partner, and a replay range."""

from django import forms

from stores.models import Partner, WebhookEventType


class EndpointForm(forms.Form):
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.filter(kind=Partner.Kind.RETAILER).order_by("name")
    )
    url = forms.CharField(label="URL", max_length=2000)
    event_types = forms.MultipleChoiceField(
        label="Events", choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple
    )
    description = forms.CharField(max_length=200, required=False)


class ReplayForm(forms.Form):
    since = forms.DateTimeField(
        label="Replay events since", help_text="For example 2008-07-11 08:02 (the server's time zone)."
    )
