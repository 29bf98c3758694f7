"""The activity log: an organization's audit records, filtered, counted per action and day, exported as CSV."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import AuditRecord, Membership, User
from app.models.base import isoformat

CSV_COLUMNS = ("time", "actor_email", "actor_id", "api_key_id", "action", "entity_type", "entity_id", "ip_address",
               "details")
STATS_DEFAULT_DAYS = 30


def _start(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


def _end(value: date | datetime | None) -> datetime | None:
    """An upper bound, exclusive; a bare date means the whole of that day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value + timedelta(days=1), time.min, tzinfo=timezone.utc)


def _filtered(query, org, *, actor_id=None, actions=None, entity_type=None, since=None, until=None):
    query = query.where(AuditRecord.org_id == org.id)
    if actor_id is not None:
        query = query.where(AuditRecord.actor_user_id == actor_id)
    if actions:
        query = query.where(AuditRecord.action.in_(list(actions)))
    if entity_type:
        query = query.where(AuditRecord.entity_type == entity_type)
    if since is not None:
        query = query.where(AuditRecord.created_at >= _start(since))
    if until is not None:
        query = query.where(AuditRecord.created_at < _end(until))
    return query


def records(org, **filters):
    """A select of the org's records, newest first, with their actors loaded."""
    return (_filtered(select(AuditRecord), org, **filters).options(selectinload(AuditRecord.actor))
            .order_by(AuditRecord.created_at.desc(), AuditRecord.id))


def _day(column):
    if db.engine.dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)  # a day in UTC, whatever the session's time zone
    return func.date(column)


def stats(org, **filters) -> dict:
    """Counts per action and per UTC day; without a start, the last 30 days."""
    if filters.get("since") is None:
        filters["since"] = (datetime.now(timezone.utc) - timedelta(days=STATS_DEFAULT_DAYS)).date()
    by_action = db.session.execute(
        _filtered(select(AuditRecord.action, func.count()), org, **filters)
        .group_by(AuditRecord.action).order_by(func.count().desc(), AuditRecord.action)).all()
    day = _day(AuditRecord.created_at)
    by_day = db.session.execute(_filtered(select(day, func.count()), org, **filters).group_by(day).order_by(day)).all()
    return {"total": sum(n for _a, n in by_action),
            "since": _start(filters["since"]), "until": _end(filters.get("until")),
            "by_action": [{"action": a, "count": n} for a, n in by_action],
            "by_day": [{"day": str(d), "count": n} for d, n in by_day]}


def filter_choices(org) -> dict:
    """What the page's filter selects offer: the org's members, actions and entity types seen."""
    members = db.session.execute(select(User.id, User.email).join(Membership, Membership.user_id == User.id)
                                 .where(Membership.org_id == org.id).order_by(User.email)).all()
    actions = db.session.scalars(select(AuditRecord.action).where(AuditRecord.org_id == org.id).distinct()
                                 .order_by(AuditRecord.action)).all()
    kinds = db.session.scalars(select(AuditRecord.entity_type).where(AuditRecord.org_id == org.id).distinct()
                               .order_by(AuditRecord.entity_type)).all()
    return {"members": members, "actions": actions, "entity_types": kinds}


def _cell(value: str) -> str:
    # A cell a spreadsheet would run as a formula (names and details are user input) is kept as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_rows(org, **filters):
    """The header, then one CSV line per record (streamed in batches, never the whole log in memory).

    The query is built now, while the request's org is loaded; the lines are produced later, as the
    response streams, when the request's own objects may already be expired or detached."""
    query = records(org, **filters).execution_options(yield_per=500)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    def lines():
        writer.writerow(CSV_COLUMNS)
        yield flush()
        for row in db.session.scalars(query):
            writer.writerow([_cell(v) for v in (
                isoformat(row.created_at), row.actor.email if row.actor else "", str(row.actor_user_id or ""),
                str(row.actor_api_key_id or ""), row.action, row.entity_type, row.entity_id or "",
                row.ip_address or "", json.dumps(row.details or {}, sort_keys=True))])
            yield flush()

    return lines()
