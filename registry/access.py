"""What a request may do to a model: one decision, used by the API, the web
pages and /m/.

A request acts as a user (signed in, or the owner of a token) and, with a
token, within that token's limits. Its level on a model is the lower of
what the user may do (owner, or their role in the owning organisation) and
what the token allows; a public model can always be read. A model the
request cannot read does not exist for it (404, never 403).
"""

from __future__ import annotations

from enum import IntEnum

from django.contrib.auth import get_user_model
from django.db.models import Q

from accounts.models import ROLE_RANK, AccessToken, Membership


class Level(IntEnum):
    NONE = 0
    READ = 1  # see the model, its versions and files
    WRITE = 2  # upload, ask for variants, move aliases, mint access links
    ADMIN = 3  # change settings, delete, see the audit log


ROLE_LEVEL = {role: Level(rank) for role, rank in ROLE_RANK.items()}


def user_level(user, owner) -> Level:
    """What ``user`` may do to models of the account ``owner`` (any token aside)."""
    if user is None or not user.is_authenticated:
        return Level.NONE
    if owner.pk == user.pk:
        return Level.ADMIN
    role = Membership.objects.filter(organization_id=owner.pk, user=user).values_list("role", flat=True).first()
    return ROLE_LEVEL[role] if role else Level.NONE


def token_covers(token: AccessToken | None, model) -> bool:
    if token is None:
        return True
    if token.organization_id is not None and model.owner_id != token.organization_id:
        return False
    return not token.limited_to_models or token.limited_models.filter(pk=model.pk).exists()


def token_ceiling(token: AccessToken | None) -> Level:
    if token is None or token.scope == AccessToken.Scope.WRITE:
        return Level.ADMIN
    return Level.READ


def model_level(user, token: AccessToken | None, model) -> Level:
    level = Level.NONE
    if token_covers(token, model):
        level = min(user_level(user, model.owner), token_ceiling(token))
    if model.public:
        level = max(level, Level.READ)
    return level


def reachable_filter(user) -> Q:
    """Models ``user`` has a role on (their own and their organisations'), public or not."""
    return Q(owner=user) | Q(owner__in=Membership.objects.filter(user=user).values("organization_id"))


def visible_filter(user, token: AccessToken | None) -> Q:
    """Models ``user`` (through ``token``, if any) can read, as a filter."""
    public = Q(public=True)
    if user is None or not user.is_authenticated:
        return public
    theirs = reachable_filter(user)
    if token is not None:
        if token.organization_id is not None:
            theirs &= Q(owner_id=token.organization_id)
        if token.limited_to_models:
            theirs &= Q(pk__in=token.limited_models.values("pk"))
    return public | theirs


def writable_owners(user, token: AccessToken | None = None) -> list:
    """Accounts ``user`` may create models in: themselves and organisations
    where they are writers or admins (within a token's organisation, and
    none for a token limited to models or a read token)."""
    if user is None or not user.is_authenticated or token_ceiling(token) < Level.WRITE:
        return []
    if token is not None and token.limited_to_models:
        return []
    org_ids = Membership.objects.filter(user=user, role__in=["write", "admin"]).values("organization_id")
    owners = get_user_model().objects.filter(Q(pk=user.pk) | Q(pk__in=org_ids))
    if token is not None and token.organization_id is not None:
        owners = owners.filter(pk=token.organization_id)
    return list(owners.order_by("username"))
