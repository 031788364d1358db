"""Webhook workflows: make hooks, turn events into deliveries, deliver them.

An event becomes one Delivery row per matching hook in the same transaction
as the change it reports (a version marked ready, an alias moved), and is
sent after that commits, so a receiver never hears of a change that was
rolled back, and a change is never lost between commit and send.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import UTC, datetime

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone as django_timezone
from standardwebhooks.webhooks import Webhook as Signer

from registry.errors import Refused
from webhooks import targets
from webhooks.models import Delivery, Event, Webhook

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.tasks.deliver"
RESPONSE_KEPT_CHARS = 2000


class WebhookError(Refused):
    """A webhook that cannot be made as asked."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create(owner, url: str, events: list[str], actor, model=None, secret: str = "") -> Webhook:
    try:
        targets.check(url)
    except targets.TargetRefused as exc:
        raise WebhookError(str(exc)) from None
    secret = secret or new_secret()
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        if not secret.startswith("whsec_") or len(key) < 16:
            raise ValueError(secret)
    except ValueError:
        raise WebhookError(
            "The secret must be a Standard Webhooks secret: 'whsec_' and base64 (or leave it out)."
        ) from None
    unknown = sorted(set(events) - set(Event.values))
    if unknown or not events:
        raise WebhookError(f"Choose events among {', '.join(Event.values)}.")
    return Webhook.objects.create(
        owner=owner,
        model=model,
        model_name=model.name if model else "",
        url=url,
        secret=secret,
        events=sorted(set(events)),
        created_by=actor,
    )


def _url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}" if settings.PUBLIC_BASE_URL else path


def _version_data(version) -> dict:
    return {
        "number": version.number,
        "status": version.status,
        "error": version.error,
        "format": version.output_format or None,
        "model_url": _url(version.model_json_path()) if version.is_ready else None,
        "parity": {key: version.parity.get(key) for key in ("passed", "max_abs_error", "max_rel_error", "atol", "rtol")}
        if version.parity
        else None,
    }


def emit(event: str, model, version=None, alias: str | None = None, **extra) -> list[Delivery]:
    """Queue ``event`` for every active hook of ``model`` and of its owner that wants it."""
    hooks = Webhook.objects.filter(active=True, owner_id=model.owner_id).filter(
        Q(model_id=model.pk) | Q(model__isnull=True)
    )
    hooks = [hook for hook in hooks if event in hook.events]
    if not hooks:
        return []
    data = {
        "model": {
            "owner": model.owner.username,
            "name": model.name,
            "full_name": model.full_name,
            "page_url": _url(reverse("model-detail", args=[model.owner.username, model.name])),
        },
        **extra,
    }
    if version is not None:
        data["version"] = _version_data(version)
    if alias is not None:
        path = reverse("serve-file", args=[model.owner.username, model.name, alias, "model.json"])
        data["alias"] = {"name": alias, "version": version.number if version else None, "model_url": _url(path)}
    body = json.dumps({"type": event, "timestamp": django_timezone.now().isoformat(), "data": data})
    deliveries = [Delivery.objects.create(webhook=hook, event=event, body=body) for hook in hooks]
    for delivery in deliveries:
        transaction.on_commit(lambda pk=delivery.pk: enqueue(pk))
    return deliveries


def enqueue(delivery_pk: int, countdown: float = 0) -> None:
    from celery import current_app

    current_app.send_task(DELIVER_TASK, args=(delivery_pk,), countdown=countdown)


def deliver(delivery: Delivery) -> bool:
    """One attempt; True when the receiver answered 2xx."""
    hook = delivery.webhook
    now = datetime.now(tz=UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "Modelport-Webhooks/1",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(hook.secret).sign(delivery.message_id, now, delivery.body),
    }
    delivery.attempts += 1
    delivery.last_attempt_at = django_timezone.now()
    try:
        targets.check(hook.url)
        response = requests.post(
            hook.url,
            data=delivery.body.encode(),
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except (targets.TargetRefused, requests.RequestException) as exc:
        delivery.response_status, delivery.response_body = None, ""
        delivery.error = str(exc)[:500]
        ok = False
    else:
        delivery.response_status = response.status_code
        delivery.response_body = response.text[:RESPONSE_KEPT_CHARS]
        ok = 200 <= response.status_code < 300
        delivery.error = "" if ok else f"The receiver answered {response.status_code}."
    if ok:
        delivery.status, delivery.delivered_at = Delivery.Status.DELIVERED, django_timezone.now()
    elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
    delivery.save()
    return ok


def retry_delay(attempts: int) -> float:
    """Exponential backoff: base, 2×base, 4×base…"""
    return settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1)


def redeliver(delivery: Delivery) -> Delivery:
    """Send a delivery again (same webhook-id and body), e.g. after fixing the receiver."""
    delivery.status = Delivery.Status.PENDING
    delivery.attempts = 0
    delivery.save(update_fields=["status", "attempts"])
    transaction.on_commit(lambda: enqueue(delivery.pk))
    return delivery


def model_deleted(model) -> None:
    """Before a model is deleted: tell its hooks, then switch its own hooks off."""
    emit(Event.MODEL_DELETED, model)
    Webhook.objects.filter(model=model).update(active=False)
