"""What the dashboard shows: real counts of what the org has, nothing invented."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Membership


def summary(org) -> dict:
    members = db.session.scalar(select(func.count()).select_from(Membership).where(Membership.org_id == org.id))
    return {"members": members}
