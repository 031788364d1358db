from __future__ import annotations

from django import forms

from registry import cards
from registry.models import Model, clean_origins, model_name_validator


class NewModelForm(forms.Form):
    """The fields a user picks for a new model; ``services.create_model``
    does the creating, so duplicates are reported from there."""

    owner = forms.ChoiceField(required=False, help_text="You, or an organisation where you have the write role.")
    name = forms.CharField(
        max_length=100,
        validators=[model_name_validator],
        help_text="Part of every URL, so it cannot be changed later.",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    public = forms.BooleanField(
        required=False,
        initial=Model._meta.get_field("public").default,
        help_text="Anyone can see and load a public model. A private one only its owner, the owning organisation's "
        "members, their tokens and the access links you mint.",
    )

    def __init__(self, *args, owners: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [(name, name) for name in owners]


LINK_LIFETIMES = [(3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days")]


class AccessLinkForm(forms.Form):
    ref = forms.ChoiceField(label="Pinned to", help_text="A version, or an alias the link follows when it moves.")
    ttl_seconds = forms.TypedChoiceField(choices=LINK_LIFETIMES, coerce=int, initial=86400, label="Expires after")
    origins = forms.CharField(
        required=False,
        label="Allowed origins",
        help_text="One per line (https://app.example.com); empty: any web page.",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )

    def __init__(self, *args, refs: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ref"].choices = refs

    def clean_origins(self) -> list[str]:
        return clean_origins(self.cleaned_data["origins"].split())


class ModelCardForm(forms.Form):
    readme = forms.CharField(
        required=False, max_length=cards.MAX_README_CHARS, strip=False, label="Model card (Markdown)",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "true"}),
    )  # fmt: skip
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. image-classification, mobilenet")
    license = forms.CharField(required=False, max_length=64, help_text="e.g. apache-2.0, mit, cc-by-4.0")

    def clean_readme(self) -> str:
        # Browsers send a textarea's lines with CRLF; the card is stored as the API stores it.
        return self.cleaned_data["readme"].replace("\r\n", "\n")

    def clean_tags(self) -> list[str]:
        try:
            return cards.clean_tags([tag for tag in self.cleaned_data["tags"].split(",") if tag.strip()])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
