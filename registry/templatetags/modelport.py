"""Template filters for model pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def shape(value) -> str:
    """A tensor shape as TF.js prints it: [null, 224, 224, 3]; "—" if unknown."""
    if not isinstance(value, list):
        return "—"
    if value and all(isinstance(item, list) for item in value):  # a layer with several outputs
        return ", ".join(shape(item) for item in value)
    return "[" + ", ".join("null" if dim is None else str(dim) for dim in value) + "]"


@register.filter
def intcomma_plain(value) -> str:
    """1234567 → 1,234,567 (without django.contrib.humanize's locale rules)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""
