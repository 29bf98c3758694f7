"""builds package lock: the exact package versions a build installs (locked to an earlier build)

Revision ID: a7c3e91f0b12
Revises: 61e5210fe7ac
Create Date: 2026-12-01 18:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7c3e91f0b12'
down_revision = '61e5210fe7ac'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('package_lock', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('builds', schema=None) as batch_op:
        batch_op.drop_column('package_lock')
