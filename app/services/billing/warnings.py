"""Plan-limit warnings as notifications: at 80% and at 100% of a limit, the org's owners and admins hear it
once per limit, level and period (the billing cycle calls this every hour)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Membership, Notification
from app.services import notifications
from app.services.billing import plans, usage

KIND = "billing.quota"


def warn(org, now: datetime) -> list[Notification]:
    made = []
    period = usage.period_key(now)
    admins = db.session.scalars(select(Membership.user_id).where(
        Membership.org_id == org.id, Membership.role.in_(("owner", "admin")))).all()
    for use in plans.limit_uses(org, now):
        if use.state == "ok":
            continue
        # Limits that count what the org holds (members, storage) stay warned until the period turns over.
        key = f"{use.key}:{use.state}:{period}"
        level = "reached" if use.state == "exceeded" else "is at 80% of"
        title = f"{org.name} {level} its {use.label} limit"
        body = (f"{org.name} has used {use.used:g} of {use.limit} {use.label} ({use.percentage:g}%) on its plan. "
                f"See usage and plans on the billing page.")
        for user_id in admins:
            exists = db.session.scalar(select(Notification.id).where(
                Notification.user_id == user_id, Notification.kind == KIND, Notification.org_id == org.id,
                Notification.entity_id == key))
            if exists is None:
                made.append(notifications.notify(user_id, KIND, org_id=org.id, title=title, body=body,
                                                 link="/billing", entity_type="billing", entity_id=key))
    db.session.flush()
    return made
