"""Who may do what: organisations and their members, access tokens, and the
audit log of what was done.

An organisation is an account: a user row that cannot sign in, plus an
``Organization`` record. Users and organisations therefore share one space of
names (the first segment of every model URL), and a model's owner is an
account either way, as on GitHub.
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from knox.models import AbstractAuthToken


class Role(models.TextChoices):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


# What each role may do, in increasing order: see registry.access.
ROLE_RANK = {Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}


class Organization(models.Model):
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="organization"
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account__username"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.account.username

    def role_of(self, user) -> str | None:
        if user is None or not user.is_authenticated:
            return None
        membership = self.memberships.filter(user=user).only("role").first()
        return membership.role if membership else None


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="unique_membership")]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class AccessToken(AbstractAuthToken):
    """An API token: stored as a hash (knox), shown once. ``scope`` read allows
    safe methods only; a token may be limited to some models or to the models
    of one organisation, and may expire."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"

    # The public id of a token (the primary key is knox's digest of the secret).
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    # An explicit flag, so a token limited to models that were all deleted
    # since grants nothing rather than everything.
    limited_to_models = models.BooleanField(default=False)
    limited_models = models.ManyToManyField("registry.Model", blank=True, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.user} · {self.name} ({self.token_key}…)"

    @property
    def is_expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()

    @property
    def is_restricted(self) -> bool:
        """Limited to some models or one organisation: such a token cannot
        manage tokens, organisations, or create models outside its limits."""
        return self.limited_to_models or self.organization_id is not None


class AuditEvent(models.Model):
    """Something done to a model or an organisation: who, when, what."""

    class Action(models.TextChoices):
        MODEL_CREATED = "model.created"
        MODEL_UPDATED = "model.updated"
        MODEL_DELETED = "model.deleted"
        VERSION_UPLOADED = "version.uploaded"
        VARIANT_REQUESTED = "variant.requested"
        ALIAS_MOVED = "alias.moved"
        ALIAS_DELETED = "alias.deleted"
        ALIAS_ROLLED_BACK = "alias.rolled_back"
        TOKEN_CREATED = "token.created"
        TOKEN_REVOKED = "token.revoked"
        LINK_CREATED = "link.created"
        LINK_REVOKED = "link.revoked"
        ORG_CREATED = "org.created"
        MEMBER_SET = "member.set"
        MEMBER_REMOVED = "member.removed"

    # The account (user or organisation) whose log this is in.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="audit_events")
    # The model, while it exists; model_name keeps the event readable after a delete.
    model = models.ForeignKey("registry.Model", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    model_name = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # The token the actor used, by its public prefix (never the secret).
    token_key = models.CharField(max_length=32, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["model", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.model_name}"

    def detail_items(self) -> list[tuple[str, str]]:
        """The details as the audit pages show them: text as is, the rest as JSON."""
        return [
            (key.replace("_", " "), value if isinstance(value, str) else json.dumps(value))
            for key, value in self.detail.items()
        ]
