from __future__ import annotations

from django import forms

from registry.models import Model, model_name_validator


class NewModelForm(forms.Form):
    """The fields a user picks for a new model; ``services.create_model``
    does the creating, so duplicates are reported from there."""

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
        help_text="Anyone can see and load a public model. A private one is visible only to you and your API tokens.",
    )
