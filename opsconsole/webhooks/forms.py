from django import forms

from opsconsole.webhooks.events import EVENT_CHOICES
from opsconsole.webhooks.services import EndpointError, clean_events, clean_url


class EndpointForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who receives it, e.g. “Slack relay”.")
    url = forms.CharField(
        label="URL",
        max_length=2048,
        help_text="https:// (the receiver checks each request's signature).",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/opsconsole"}),
    )
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    active = forms.BooleanField(
        required=False, initial=True, help_text="An inactive endpoint is sent nothing."
    )

    def clean_url(self) -> str:
        try:
            return clean_url(self.cleaned_data["url"])
        except EndpointError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_events(self) -> list[str]:
        try:
            return clean_events(self.cleaned_data["events"])
        except EndpointError as exc:
            raise forms.ValidationError(str(exc)) from None
