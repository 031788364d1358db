"""Access links: a read-only URL of one private model's model.json that a
browser app can load with no header and no token.

The link is ``…/{ref}/model.json?access=<id>:<signature>``. tfjs repeats
model.json's query string on every weight URL it fetches
(tfjs-core io/http.ts), so the same signed value opens the weights the
model.json lists, and nothing else: not other versions, variants, cuts or
the API. The signature (Django's Signer over the link's id, keyed by
SECRET_KEY) makes ids unguessable; the row makes a link revocable and
expiring; an origin list limits which web apps may use it.
"""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import record
from registry import readcache
from registry.errors import Refused
from registry.models import AccessLink, Model, Version
from registry.services import RegistryError

PARAMETER = "access"
MAX_TTL_SECONDS = 366 * 24 * 3600
_signer = signing.Signer(salt="modelport.access-link")


class LinkRefused(Refused):
    """A link that does not open what was asked."""

    default_status = 403


def mint(model: Model, ref: str, ttl_seconds: int, origins: list[str], actor, token=None) -> AccessLink:
    if model.version_at(ref) is None:
        raise RegistryError(f"Model '{model.full_name}' has no ready version or alias '{ref}'.")
    link = AccessLink.objects.create(
        model=model,
        ref=ref,
        origins=origins,
        created_by=actor,
        expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
    )
    record(
        AuditEvent.Action.LINK_CREATED,
        model.owner,
        actor=actor,
        model=model,
        token=token,
        link=str(link.uid),
        ref=ref,
        expires_at=link.expires_at.isoformat(),
        origins=origins,
    )
    return link


def revoke(link: AccessLink, actor, token=None) -> None:
    with transaction.atomic():
        if link.revoked_at is None:
            link.revoked_at = timezone.now()
            link.save(update_fields=["revoked_at"])
            record(
                AuditEvent.Action.LINK_REVOKED,
                link.model.owner,
                actor=actor,
                model=link.model,
                token=token,
                link=str(link.uid),
                ref=link.ref,
            )


def url_path(link: AccessLink) -> str:
    """The link's model.json path with its signed query string."""
    path = reverse("serve-file", args=[link.model.owner.username, link.model.name, link.ref, "model.json"])
    return f"{path}?{PARAMETER}={_signer.sign(str(link.uid))}"


def find(request, owner: str, name: str) -> AccessLink | None:
    """The link the request carries for model ``owner/name``, checked for
    revocation, expiry and origin; None if it carries none."""
    value = request.GET.get(PARAMETER)
    if value is None:
        return None
    try:
        uid = _signer.unsign(value)
        link = readcache.remember(
            request,
            ("link", uid, owner, name),
            lambda: (
                AccessLink.objects.select_related("model__owner")
                .filter(uid=uid, model__owner__username=owner, model__name=name)
                .first()
            ),
        )
    except (signing.BadSignature, ValueError):
        link = None
    if link is None:
        # Forged, or for another model: as if the model did not exist.
        raise LinkRefused("No such model.", status=404)
    if link.revoked_at is not None:
        raise LinkRefused("This access link was revoked.")
    if link.is_expired:
        raise LinkRefused(f"This access link expired at {link.expires_at:%Y-%m-%d %H:%M:%S} UTC.")
    origin = request.headers.get("Origin", "")
    if link.origins and origin not in link.origins:
        raise LinkRefused(f"This access link is not valid on {origin or 'a page without an origin'}.")
    return link


def versions_opened(link: AccessLink) -> list[Version]:
    """The versions whose weights the link opens: the one it points at now
    and, for an alias, those the alias pointed at since the link was made
    (so a page load that began before a move still gets its weights)."""
    versions = [version] if (version := link.model.version_at(link.ref)) else []
    if not link.ref.isdigit():
        moved_from = link.model.alias_moves.filter(alias=link.ref, moved_at__gte=link.created_at).values("from_version")
        versions += list(Version.objects.filter(pk__in=moved_from, status=Version.Status.READY))
    return versions


def opens_blob(request, link: AccessLink, sha256: str) -> bool:
    opened = readcache.remember(request, ("link-versions", link.pk), lambda: versions_opened(link))
    return any(blob["sha256"] == sha256 for version in opened for blob in version.blobs)
