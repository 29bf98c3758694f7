"""Queue plumbing for the outbox consumers: the `webhooks` queue and its enqueue helpers.

Kept apart from the job functions (app.tasks.webhooks) so services can ask for a dispatch after their
commit without importing the jobs that import them.
"""
from __future__ import annotations

from rq import Queue
from rq.serializers import JSONSerializer

from app.extensions import redis

WEBHOOKS_QUEUE = "webhooks"
JOB_TIMEOUT = 120  # a dispatch pass or one HTTP try; the HTTP timeouts are far shorter


def _queue() -> Queue:
    return Queue(WEBHOOKS_QUEUE, connection=redis.client, serializer=JSONSerializer)


def enqueue_dispatch() -> None:
    """Fan out every unpublished outbox event (a no-op pass when another job got there first)."""
    _queue().enqueue("app.tasks.webhooks.dispatch_outbox", job_timeout=JOB_TIMEOUT, result_ttl=600,
                     failure_ttl=7 * 24 * 3600, description="dispatch outbox events")


def enqueue_delivery(delivery_id) -> None:
    _queue().enqueue("app.tasks.webhooks.run_delivery", args=(str(delivery_id),), job_timeout=JOB_TIMEOUT,
                     result_ttl=600, failure_ttl=7 * 24 * 3600, description=f"webhook delivery {delivery_id}")


def enqueue_emails(notification_ids) -> None:
    if notification_ids:
        _queue().enqueue("app.tasks.webhooks.send_notification_emails", args=([str(i) for i in notification_ids],),
                         job_timeout=JOB_TIMEOUT, result_ttl=600, failure_ttl=7 * 24 * 3600,
                         description="notification e-mails")
