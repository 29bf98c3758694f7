"""The billing cycle, an RQ job the worker's scheduler runs every hour: each org's token period rolled over
(monthly grant, expiry of last month's leftover), warnings at 80% and 100% of a limit sent, and artifacts past their tier's retention deleted.

Periods also roll over lazily when an org's ledger is read, so a stopped scheduler delays only retention.
Safe to run twice: grants and expiries are deduplicated by key, expired builds are marked."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq.job import JobStatus
from sqlalchemy import select

from app import queues
from app.extensions import db
from app.models import Organization
from app.models.base import utcnow
from app.services.billing import ledger, retention, warnings

log = logging.getLogger("kiln.billing")
CYCLE_JOB_ID = "kiln-billing-cycle"
CYCLE_EVERY = timedelta(hours=1)
CYCLE_TIMEOUT = 1800


def run_billing_cycle() -> dict:
    db.engine.dispose(close=False)  # a forked work horse must not share the parent's connections
    now = utcnow()
    try:
        rolled = 0
        for org_id in db.session.scalars(select(Organization.id).where(Organization.deleted_at.is_(None))).all():
            org = db.session.get(Organization, org_id)
            ledger.roll_over(org, now)
            warnings.warn(org, now)
            db.session.commit()
            rolled += 1
        expired = retention.expire_due(now)
        db.session.commit()
        log.info("billing cycle: %d orgs rolled over, %d builds' artifacts expired", rolled, expired)
        return {"orgs": rolled, "expired": expired}
    finally:
        schedule_cycle(_hour(now) + CYCLE_EVERY)


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def cycle_job_id(at: datetime) -> str:
    return f"kiln-billing-cycle-{at:%Y%m%d%H}"


def schedule_cycle(at: datetime | None = None) -> str:
    """Schedule the cycle of the hour `at` (default: now, at once). One job per hour: a cycle of that hour
    that is already scheduled, queued, running or done is left alone, so every worker may call this at start
    and each cycle schedules the next. Returns the job id."""
    now = utcnow()
    at = at or now
    job_id = cycle_job_id(_hour(at))
    existing = queues.fetch_job(job_id)
    if existing is not None:
        if existing.get_status(refresh=True) != JobStatus.FAILED:
            return job_id
        existing.delete()
    queue = queues.get_queue("default")
    kwargs = dict(job_id=job_id, job_timeout=CYCLE_TIMEOUT, result_ttl=2 * 3600, failure_ttl=7 * 24 * 3600,
                  description="billing cycle: token periods, artifact retention")
    if at <= now:
        queue.enqueue("app.tasks.billing.run_billing_cycle", **kwargs)
    else:
        queue.enqueue_at(at, "app.tasks.billing.run_billing_cycle", **kwargs)
    return job_id
