"""The token ledger: append-only rows whose sum is the balance, monthly grants and expiry that happen once
per period however often the period is rolled over, and the debit of an LLM chat turn."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GRANT = 1000
OPS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["consume", "refund", "purchase"]), st.integers(min_value=0, max_value=1500)),
    st.tuples(st.just("roll"), st.integers(min_value=0, max_value=2)),  # months forward
), max_size=12)


class Model:
    """What the ledger should hold, computed independently of it."""

    def __init__(self):
        self.balance, self.last_grant, self.spent_since_grant = 0, None, 0

    def apply(self, op, amount):
        if op == "consume":
            self.balance -= amount
            self.spent_since_grant += amount
        elif op == "refund":
            self.balance += amount
            self.spent_since_grant -= amount
        elif op == "purchase":
            self.balance += amount

    def roll(self):
        if self.last_grant is not None:
            # Refunds beyond what was spent are credit, not part of the grant: they do not expire.
            self.balance -= min(max(0, self.last_grant - max(0, self.spent_since_grant)), max(0, self.balance))
        self.balance += GRANT
        self.last_grant, self.spent_since_grant = GRANT, 0


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_balance_is_the_sum_of_the_rows_after_any_operations(app, billing, user, ops):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Organization, TokenTransaction, User
    from app.services import accounts
    from app.services.audit import Actor
    from app.services.billing import ledger

    tier = billing.tier("metered", llm_tokens_per_month=GRANT)
    with app.app_context():
        owner = db.session.get(User, user.id)
        org = accounts.create_organization(Actor(user=owner), "Ledger", owner=owner)
        org.plan = tier
        db.session.flush()
        now = datetime(2030, 1, 15, tzinfo=timezone.utc)
        model = Model()
        ledger.roll_over(org, now)
        model.roll()
        for op, value in ops:
            if op == "roll":
                now = (now.replace(day=1) + timedelta(days=32 * value)).replace(day=15) if value else now
                rows_before = db.session.scalar(select(func.count(TokenTransaction.id)))
                ledger.roll_over(org, now)
                if value:
                    model.roll()
                ledger.roll_over(org, now)  # twice in one month: nothing more
                if not value:
                    assert db.session.scalar(select(func.count(TokenTransaction.id))) == rows_before
            else:
                ledger.record(org.id, op, value, at=now)
                model.apply(op, value)
            total = db.session.scalar(select(func.coalesce(func.sum(TokenTransaction.amount), 0))
                                      .where(TokenTransaction.org_id == org.id))
            assert ledger.balance(org.id) == total == model.balance
        db.session.rollback()
        assert db.session.get(Organization, org.id) is None


def test_amounts_are_checked(app_ctx, org_id):
    from app.services.billing import ledger
    from app.services.errors import ValidationFailed

    for bad in (-1, 1.5, True):
        with pytest.raises(ValidationFailed):
            ledger.record(org_id, "grant", bad)
    with pytest.raises(ValidationFailed):
        ledger.record(org_id, "gift", 5)


def test_balance_and_transactions_api(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier("metered", llm_tokens_per_month=GRANT))
    balance = client.get("/api/tokens/balance", headers=auth_headers).get_json()
    assert (balance["balance"], balance["monthlyGrant"], balance["usedThisPeriod"]) == (GRANT, GRANT, 0)
    # Reading again in the same month grants nothing more.
    assert client.get("/api/tokens/balance", headers=auth_headers).get_json()["balance"] == GRANT
    page = client.get("/api/tokens/transactions?limit=1", headers=auth_headers).get_json()
    assert page["totalCount"] == 1 and page["hasMore"] is False
    assert page["transactions"][0]["kind"] == "grant" and page["transactions"][0]["amount"] == GRANT
    assert client.get("/api/tokens/transactions?kind=gift", headers=auth_headers).status_code == 400


@pytest.fixture
def llm(app, monkeypatch):
    from tests.planner.fake_llm import FakeLLM

    fake = FakeLLM()
    monkeypatch.setitem(app.config, "KILN_LLM_URL", fake.url)
    monkeypatch.setitem(app.config, "KILN_LLM_MODEL", "tiny-test")
    yield fake
    fake.close()


def _answer_costing(llm, tokens: int) -> None:
    llm.replies.append((200, json.dumps({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens - 10, "completion_tokens": 10, "total_tokens": tokens}}).encode()))


def test_chat_turn_with_llm_debits_tokens_and_is_refused_when_none_are_left(client, auth_headers, billing, org_id,
                                                                             llm):
    billing.put_on(org_id, billing.tier("metered", llm_tokens_per_month=100))
    _answer_costing(llm, 60)
    _answer_costing(llm, 150)
    assert client.post("/api/chat", json={"message": "hello"}, headers=auth_headers).status_code == 200
    balance = client.get("/api/tokens/balance", headers=auth_headers).get_json()
    assert (balance["usedThisPeriod"], balance["balance"]) == (60, 40)
    # 40 left: the turn may run; it costs more than is left, which the ledger records as it happened.
    assert client.post("/api/chat", json={"message": "hello again"}, headers=auth_headers).status_code == 200
    balance = client.get("/api/tokens/balance", headers=auth_headers).get_json()
    assert (balance["usedThisPeriod"], balance["balance"]) == (210, -110)
    refused = client.post("/api/chat", json={"message": "and again"}, headers=auth_headers)
    assert refused.status_code == 402
    details = refused.get_json()["error"]["details"]
    assert (details["limit"], details["current"], details["allowed"]) == ("llm_tokens_per_month", 210, 100)
    assert len(llm.requests) == 2  # the refused turn never reached the model
    kinds = [t["kind"] for t in client.get("/api/tokens/transactions", headers=auth_headers).get_json()["transactions"]]
    assert kinds == ["consume", "consume", "grant"]


def test_the_builtin_planner_uses_no_tokens(client, auth_headers, billing, org_id):
    billing.put_on(org_id, billing.tier("metered", llm_tokens_per_month=0))
    assert client.post("/api/chat", json={"message": "hello"}, headers=auth_headers).status_code == 200
