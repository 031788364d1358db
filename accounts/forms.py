from __future__ import annotations

from django import forms

from accounts.models import AccessToken, Role

EXPIRY_CHOICES = [
    ("", "Never"),
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


class NewTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “GitHub Actions” or “laptop”.")
    scope = forms.ChoiceField(
        choices=[(AccessToken.Scope.READ, "Read: load and list models"),
                 (AccessToken.Scope.WRITE, "Write: also upload, move aliases, mint links")],
        initial=AccessToken.Scope.WRITE, widget=forms.RadioSelect,
    )  # fmt: skip
    models = forms.MultipleChoiceField(
        required=False,
        help_text="Leave empty for every model you can reach; pick some to limit the token to them.",
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )
    organization = forms.ChoiceField(
        required=False, label="Organisation", help_text="Limit the token to one organisation's models."
    )
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires after")

    def __init__(self, *args, model_names: list[str], organizations: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = [(name, name) for name in model_names]
        self.fields["organization"].choices = [("", "No limit")] + [(name, name) for name in organizations]


class NewOrganizationForm(forms.Form):
    name = forms.CharField(
        max_length=150,
        help_text="Letters, digits and @ . + - _ only; part of every model URL, like a user name.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
