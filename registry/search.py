"""Finding models: words, a tag, an output format, an order."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from registry.models import Version

ORDERINGS = {
    "recent": ["-updated_at", "pk"],
    "name": ["owner__username", "name"],
    "downloads": ["-downloads_30d", "-updated_at", "pk"],
}


def search(models: QuerySet, params) -> QuerySet:
    for word in params.get("q", "").split()[:10]:
        models = models.filter(
            Q(name__icontains=word)
            | Q(description__icontains=word)
            | Q(owner__username__icontains=word)
            | Q(tags__icontains=word)
        )
    if tag := params.get("tag", "").strip().lower():
        # Tags match registry.cards.TAG_PATTERN (no quotes), so the quoted tag
        # occurs in the stored JSON text exactly when the list holds it; this
        # works on SQLite, whose JSON fields have no `contains` lookup.
        models = models.filter(tags__icontains=f'"{tag}"')
    if output_format := params.get("output_format", "").strip():
        ready = Version.objects.filter(status=Version.Status.READY, output_format=output_format)
        models = models.filter(pk__in=ready.values("model_id"))
    return models.with_downloads().order_by(*ORDERINGS.get(params.get("ordering", ""), ORDERINGS["recent"]))
