from __future__ import annotations

from celery import shared_task

from webhooks import services
from webhooks.models import Delivery


@shared_task(ignore_result=True)
def deliver(delivery_id: int) -> None:
    """One attempt, then a later one with exponential backoff until
    WEBHOOK_MAX_ATTEMPTS; the schedule lives in the queue, the state in the row."""
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return
    if not services.deliver(delivery) and delivery.status == Delivery.Status.PENDING:
        services.enqueue(delivery.pk, countdown=services.retry_delay(delivery.attempts))
