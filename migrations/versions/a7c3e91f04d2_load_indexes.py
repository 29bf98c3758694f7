"""load: indexes for the build list (one page in sort order, counts from an index)

Revision ID: a7c3e91f04d2
Revises: a7c3e91f0b12
Create Date: 2026-12-01 18:45:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a7c3e91f04d2'
down_revision = 'a7c3e91f0b12'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.create_index('ix_builds_org_created', ['org_id', 'created_at', 'number'], unique=False)
        batch_op.create_index('ix_builds_org_updated', ['org_id', 'updated_at', 'number'], unique=False)
        batch_op.create_index('ix_builds_org_conversation', ['org_id', 'conversation_id'], unique=False)


def downgrade():
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.drop_index('ix_builds_org_conversation')
        batch_op.drop_index('ix_builds_org_updated')
        batch_op.drop_index('ix_builds_org_created')
