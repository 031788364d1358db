"""Webhooks: tell another system that a version is ready or failed, an alias
moved or a model was deleted, signed per the Standard Webhooks spec."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Event(models.TextChoices):
    VERSION_READY = "version.ready"
    VERSION_FAILED = "version.failed"
    ALIAS_MOVED = "alias.moved"
    MODEL_DELETED = "model.deleted"


class Webhook(models.Model):
    """A target for one model's events, or for every model of an owner
    (a user or an organisation) when ``model`` is empty."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    # Kept (and the hook switched off) when the model is deleted, so the
    # model.deleted delivery and the log survive it.
    model = models.ForeignKey(
        "registry.Model", on_delete=models.SET_NULL, null=True, blank=True, related_name="webhooks"
    )
    model_name = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=2000)
    # A Standard Webhooks secret (whsec_ + base64); it signs, so it is kept as is.
    secret = models.CharField(max_length=200)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.owner}/{self.model_name or '*'} → {self.url}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    # The exact body sent (and signed), so a redelivery sends the same bytes.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url} ({self.status})"

    @property
    def message_id(self) -> str:
        """``webhook-id``: the same for every attempt of one delivery, so receivers can drop duplicates."""
        return f"msg_{self.uid.hex}"
