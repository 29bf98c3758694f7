"""The LLM token ledger: append-only transactions per organization; the balance is their sum.

Each calendar month the org's tier grants its monthly tokens; what is left of the last grant when the month
ends expires (consumption spends granted tokens first, so purchased tokens carry over). Periods roll over
lazily on first use in a new month, and from the scheduled job; the dedupe key makes either happen once."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.base import utcnow
from app.models.billing import TOKEN_KINDS, TokenTransaction
from app.services.billing import usage
from app.services.billing.quotas import refusal
from app.services.billing.tiers import tier_of
from app.services.errors import ValidationFailed

POSITIVE = frozenset({"grant", "refund", "purchase"})


def balance(org_id) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(TokenTransaction.amount), 0)).where(
        TokenTransaction.org_id == org_id)) or 0)


def record(org_id, kind: str, amount: int, *, reason: str = "", reference: str | None = None,
           dedupe_key: str | None = None, user_id=None, at: datetime | None = None) -> TokenTransaction | None:
    """Append one transaction. `amount` is given positive; the kind decides its sign. With a dedupe key that
    was already used, nothing is written and None is returned."""
    if kind not in TOKEN_KINDS:
        raise ValidationFailed(f"kind: must be one of {', '.join(TOKEN_KINDS)}", {"kind": ["Unknown kind."]})
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationFailed("amount: must be a whole number of tokens, 0 or more",
                               {"amount": ["Must be a whole number, 0 or more."]})
    row = TokenTransaction(org_id=org_id, kind=kind, amount=amount if kind in POSITIVE else -amount,
                           reason=reason[:500], reference=reference, dedupe_key=dedupe_key, created_by_id=user_id,
                           created_at=at or utcnow())
    if dedupe_key is None:
        db.session.add(row)
        db.session.flush()
        return row
    if db.session.scalar(select(TokenTransaction.id).where(TokenTransaction.dedupe_key == dedupe_key)):
        return None
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:  # another process rolled the same period over first
        return None
    return row


def roll_over(org, now: datetime | None = None) -> None:
    """Bring the org's ledger into the current month: expire what is left of the last month's grant, then
    grant this month's tokens (the tier's llm_tokens_per_month; none on an unlimited tier)."""
    now = now or utcnow()
    current = usage.period_key(now)
    if db.session.scalar(select(TokenTransaction.id).where(
            TokenTransaction.dedupe_key == f"grant:{org.id}:{current}")):
        return
    last = db.session.scalar(select(TokenTransaction).where(
        TokenTransaction.org_id == org.id, TokenTransaction.kind == "grant")
        .order_by(TokenTransaction.created_at.desc()).limit(1))
    if last is not None and usage.period_key(last.created_at) != current:
        leftover = last.amount - usage.tokens_used(org.id, last.created_at)
        expiring = min(max(0, leftover), max(0, balance(org.id)))
        record(org.id, "expiry", expiring, reason=f"Unused tokens of {usage.period_key(last.created_at)} expired",
               dedupe_key=f"expiry:{org.id}:{usage.period_key(last.created_at)}", at=now)
    grant = tier_of(org).llm_tokens_per_month
    if grant is not None:
        record(org.id, "grant", grant, reason=f"Monthly tokens for {current}",
               dedupe_key=f"grant:{org.id}:{current}", at=now)


def require_tokens(org) -> None:
    """Before an LLM turn: refuse when the org has no tokens left (an unlimited tier never runs out)."""
    tier = tier_of(org)
    if tier.llm_tokens_per_month is None:
        return
    roll_over(org)
    if balance(org.id) <= 0:
        used = usage.tokens_used(org.id, usage.period_start(utcnow()))
        raise refusal(tier, "llm_tokens_per_month", used, used + 1)


def consume(org, amount: int, *, reference: str | None = None, user_id=None) -> TokenTransaction | None:
    """Debit what an LLM turn used. The call already happened, so this may take the balance below zero; the
    next turn is then refused. Unlimited tiers are metered too (usage pages), never refused."""
    if amount <= 0:
        return None
    roll_over(org)
    return record(org.id, "consume", amount, reason="Chat turn", reference=reference, user_id=user_id)


def transactions_of(org, kind: str | None = None):
    query = TokenTransaction.for_org(org.id)
    if kind:
        query = query.where(TokenTransaction.kind == kind)
    return query.order_by(TokenTransaction.created_at.desc(), TokenTransaction.id.desc())


def daily_balances(org, days: int = 30, now: datetime | None = None) -> list[tuple[date, int]]:
    """The balance at the end of each of the last `days` days (for the chart)."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    rows = db.session.execute(select(TokenTransaction.created_at, TokenTransaction.amount).where(
        TokenTransaction.org_id == org.id).order_by(TokenTransaction.created_at)).all()
    running, points, i = 0, [], 0
    for n in range(days):
        day = first + timedelta(days=n)
        while i < len(rows) and rows[i][0].date() <= day:
            running += rows[i][1]
            i += 1
        points.append((day, running))
    return points
