"""Page/limit over a SQLAlchemy select. Apart from http/schemas, which the API object (and so the
extensions module) imports: reading the session here must not make extensions import itself."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db


def paginate(query, page: int, limit: int):
    """Apply page/limit to a SQLAlchemy select; return (rows, total)."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(limit).offset((page - 1) * limit)).all()
    return rows, total
