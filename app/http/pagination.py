"""Page/limit over a SQLAlchemy select. Apart from http/schemas, which the API object (and so the
extensions module) imports: reading the session here must not make extensions import itself."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.http.schemas import page_envelope


def paginate(query, page: int, limit: int):
    """Apply page/limit to a SQLAlchemy select; return (rows, total)."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(limit).offset((page - 1) * limit)).all()
    return rows, total


def page_of(key: str, query, args) -> dict:
    """One page of a select as the list envelope, `args` being PaginationArgs (page, limit)."""
    rows, total = paginate(query, args["page"], args["limit"])
    return page_envelope(key, rows, total, args["page"], args["limit"])
