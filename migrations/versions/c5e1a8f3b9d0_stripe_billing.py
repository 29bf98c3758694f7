"""stripe billing: an organization's Stripe customer and subscription, and the webhook events already applied

Revision ID: c5e1a8f3b9d0
Revises: a7c3e9b1d2f4
Create Date: 2026-12-01 19:55:00

"""
import sqlalchemy as sa
from alembic import op

import app.models.base

revision = 'c5e1a8f3b9d0'
down_revision = 'a7c3e9b1d2f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('billing_accounts',
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=False),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=True),
    sa.Column('subscription_status', sa.String(length=32), nullable=True),
    sa.Column('current_period_end', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_invoice_id', sa.String(length=255), nullable=True),
    sa.Column('last_invoice_status', sa.String(length=32), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_billing_accounts_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_billing_accounts')),
    sa.UniqueConstraint('stripe_customer_id', name=op.f('uq_billing_accounts_stripe_customer_id'))
    )
    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=True),
    sa.Column('received_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_stripe_events_org_id_organizations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )


def downgrade():
    op.drop_table('stripe_events')
    op.drop_table('billing_accounts')
