"""Workflows of accounts: organisations and their members, tokens, the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import AccessToken, AuditEvent, Membership, Organization, Role
from registry.errors import Refused

ORGANIZATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,38}\Z")


class AccountsError(Refused):
    """A request about organisations, members or tokens, refused."""


def record(action: str, owner, actor=None, model=None, token: AccessToken | None = None, **detail) -> AuditEvent:
    """Add an event to the log of ``owner`` (a user or organisation account)."""
    return AuditEvent.objects.create(
        owner=owner,
        model=model,
        model_name=model.name if model is not None else detail.pop("model_name", ""),
        actor=actor if actor is not None and actor.is_authenticated else None,
        token_key=token.token_key if token is not None else "",
        action=action,
        detail=detail,
    )


def create_organization(name: str, creator, description: str = "") -> Organization:
    """A new organisation with ``creator`` as its first admin."""
    User = get_user_model()
    if not ORGANIZATION_NAME.match(name):
        raise AccountsError(
            "Use 1-39 ASCII letters, digits, '.', '_' or '-' for an organisation's name, "
            "starting with a letter or digit."
        )
    if User.objects.filter(username__iexact=name).exists():
        raise AccountsError(f"The name '{name}' is taken by a user or organisation.", status=409)
    account = User(username=name, is_active=False)
    try:
        account.full_clean(exclude=["password"])
    except ValidationError as exc:
        messages = exc.message_dict.get("username") or [m for ms in exc.message_dict.values() for m in ms]
        if any("already exists" in message for message in messages):
            raise AccountsError(f"The name '{name}' is taken by a user or organisation.", status=409) from None
        raise AccountsError(" ".join(messages)) from None
    account.set_unusable_password()
    try:
        with transaction.atomic():
            account.save()
            organization = Organization.objects.create(account=account, description=description)
            Membership.objects.create(organization=organization, user=creator, role=Role.ADMIN)
    except IntegrityError:
        raise AccountsError(f"The name '{name}' is taken by a user or organisation.", status=409) from None
    record(AuditEvent.Action.ORG_CREATED, account, actor=creator, name=name)
    return organization


def set_member(organization: Organization, username: str, role: str, actor) -> tuple[Membership, bool]:
    user = get_user_model().objects.filter(username=username, is_active=True, organization__isnull=True).first()
    if user is None:
        raise AccountsError(f"There is no user named '{username}'.", status=404)
    with transaction.atomic():
        _lock(organization)
        current = organization.memberships.filter(user=user).first()
        if current and current.role == Role.ADMIN and role != Role.ADMIN:
            _keep_an_admin(organization, user)
        membership, created = Membership.objects.update_or_create(
            organization=organization, user=user, defaults={"role": role}
        )
        if role == Role.READ:
            _withdraw(organization, user, tokens=False)
    record(
        AuditEvent.Action.MEMBER_SET,
        organization.account,
        actor=actor,
        member=username,
        role=role,
        previous_role=current.role if current else None,
    )
    return membership, created


def remove_member(organization: Organization, username: str, actor) -> None:
    with transaction.atomic():
        _lock(organization)
        membership = organization.memberships.filter(user__username=username).first()
        if membership is None:
            raise AccountsError(f"'{username}' is not a member of {organization.name}.", status=404)
        if membership.role == Role.ADMIN:
            _keep_an_admin(organization, membership.user)
        membership.delete()
        _withdraw(organization, membership.user, tokens=True)
    record(AuditEvent.Action.MEMBER_REMOVED, organization.account, actor=actor, member=username)


def _lock(organization: Organization) -> None:
    """Serialise membership changes of one organisation (so two admins
    demoting each other cannot leave it with none)."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _withdraw(organization: Organization, user, tokens: bool) -> None:
    """What a member loses with their write role: the access links they minted
    on the organisation's models and, when they leave, their tokens for it."""
    from registry import readcache
    from registry.models import AccessLink

    AccessLink.objects.filter(model__owner_id=organization.pk, created_by=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    readcache.forget_after_commit()  # update() sends no signals
    if tokens:
        AccessToken.objects.filter(user=user, organization=organization).delete()


def _keep_an_admin(organization: Organization, leaving) -> None:
    others = organization.memberships.filter(role=Role.ADMIN).exclude(user=leaving)
    if not others.exists():
        raise AccountsError(f"{organization.name} needs at least one admin: make someone else admin first.", status=409)


def create_token(
    user,
    name: str,
    scope: str = AccessToken.Scope.WRITE,
    models=None,
    organization: Organization | None = None,
    expires_in_days: int | None = None,
    actor_token: AccessToken | None = None,
) -> tuple[AccessToken, str]:
    """A new token and its secret (shown once; only its hash is stored). A
    token made with a token never outlives it."""
    expiry = timedelta(days=expires_in_days) if expires_in_days else None
    with transaction.atomic():
        token, key = AccessToken.objects.create(
            user,
            expiry=expiry,
            name=name,
            scope=scope,
            organization=organization,
            limited_to_models=models is not None,
        )
        if models:
            token.limited_models.set(models)
        ceiling = actor_token.expiry if actor_token is not None else None
        if ceiling is not None and (token.expiry is None or token.expiry > ceiling):
            token.expiry = ceiling
            token.save(update_fields=["expiry"])
    detail = {"token_name": name, "token_prefix": token.token_key, "scope": scope}
    # Each account's log names only that account's models.
    owners = {user.pk: user} | ({organization.pk: organization.account} if organization else {})
    owners |= {model.owner_id: model.owner for model in models or []}
    for owner in owners.values():
        limits = {"models": [m.full_name for m in models if m.owner_id == owner.pk]} if models is not None else {}
        record(AuditEvent.Action.TOKEN_CREATED, owner, actor=user, token=actor_token, **detail, **limits)
    return token, key


def revoke_token(token: AccessToken, actor, actor_token: AccessToken | None = None) -> None:
    detail = {"token_name": token.name, "token_prefix": token.token_key}
    owner, organization = token.user, token.organization
    token.delete()
    record(AuditEvent.Action.TOKEN_REVOKED, owner, actor=actor, token=actor_token, **detail)
    if organization is not None:
        record(AuditEvent.Action.TOKEN_REVOKED, organization.account, actor=actor, token=actor_token, **detail)
