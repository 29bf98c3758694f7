"""billing: plan tiers (seeded with free/pro/team/enterprise), the LLM token ledger, builds.artifacts_expired_at,
the usage of deleted builds

Revision ID: a7c3e9b1d2f4
Revises: a7c3e91f04d2
Create Date: 2026-12-01 18:30:00

"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = 'a7c3e9b1d2f4'
down_revision = 'a7c3e91f04d2'
branch_labels = None
depends_on = None

# The tiers as they were when this migration was written (site admins edit them afterwards); the same values
# as app/services/billing/tiers.py DEFAULT_TIERS, copied so later code changes cannot rewrite history.
TIERS = [
    dict(name="free", display_name="Free", position=0, price_cents_month=0, builds_per_hour=5, builds_per_month=50,
         concurrent_builds=1, build_minutes_per_month=300, storage_mb=2048, retention_days=7, members=3, api_keys=2,
         webhooks=2, llm_tokens_per_month=50_000, api_requests_per_minute=60, owned_orgs=2),
    dict(name="pro", display_name="Pro", position=1, price_cents_month=2900, builds_per_hour=20, builds_per_month=500,
         concurrent_builds=3, build_minutes_per_month=3000, storage_mb=20_480, retention_days=30, members=10,
         api_keys=10, webhooks=10, llm_tokens_per_month=1_000_000, api_requests_per_minute=300, owned_orgs=10),
    dict(name="team", display_name="Team", position=2, price_cents_month=9900, builds_per_hour=60,
         builds_per_month=2000, concurrent_builds=10, build_minutes_per_month=15_000, storage_mb=102_400,
         retention_days=90, members=50, api_keys=50, webhooks=50, llm_tokens_per_month=5_000_000,
         api_requests_per_minute=1000, owned_orgs=50),
    dict(name="enterprise", display_name="Enterprise", position=3, price_cents_month=0, builds_per_hour=None,
         builds_per_month=None, concurrent_builds=None, build_minutes_per_month=None, storage_mb=None,
         retention_days=None, members=None, api_keys=None, webhooks=None, llm_tokens_per_month=None,
         api_requests_per_minute=None, owned_orgs=None),
]


def upgrade():
    tiers = op.create_table('billing_tiers',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('price_cents_month', sa.Integer(), nullable=False),
    sa.Column('builds_per_hour', sa.Integer(), nullable=True),
    sa.Column('builds_per_month', sa.Integer(), nullable=True),
    sa.Column('concurrent_builds', sa.Integer(), nullable=True),
    sa.Column('build_minutes_per_month', sa.Integer(), nullable=True),
    sa.Column('storage_mb', sa.Integer(), nullable=True),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('members', sa.Integer(), nullable=True),
    sa.Column('api_keys', sa.Integer(), nullable=True),
    sa.Column('webhooks', sa.Integer(), nullable=True),
    sa.Column('llm_tokens_per_month', sa.BigInteger(), nullable=True),
    sa.Column('api_requests_per_minute', sa.Integer(), nullable=True),
    sa.Column('owned_orgs', sa.Integer(), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_billing_tiers'))
    )
    op.create_table('token_transactions',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=True),
    sa.Column('dedupe_key', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_token_transactions_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_token_transactions_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_token_transactions')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_token_transactions_dedupe_key'))
    )
    with op.batch_alter_table('token_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_token_transactions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_token_transactions_org_id'), ['org_id'], unique=False)
    op.create_table('billing_deleted_builds',
    sa.Column('build_id', sa.Uuid(), nullable=False),
    sa.Column('queued_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_billing_deleted_builds_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_deleted_builds'))
    )
    with op.batch_alter_table('billing_deleted_builds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_deleted_builds_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_deleted_builds_queued_at'), ['queued_at'], unique=False)
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifacts_expired_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
    now = datetime.now(timezone.utc)
    op.bulk_insert(tiers, [{**tier, "created_at": now, "updated_at": now} for tier in TIERS])


def downgrade():
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.drop_column('artifacts_expired_at')
    with op.batch_alter_table('billing_deleted_builds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_deleted_builds_queued_at'))
        batch_op.drop_index(batch_op.f('ix_billing_deleted_builds_org_id'))
    op.drop_table('billing_deleted_builds')
    with op.batch_alter_table('token_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_token_transactions_org_id'))
        batch_op.drop_index(batch_op.f('ix_token_transactions_created_at'))
    op.drop_table('token_transactions')
    op.drop_table('billing_tiers')
