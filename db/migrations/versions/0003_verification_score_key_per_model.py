"""verification scores keyed per model

The baselines are fitted on each model's own training period, so the scores of
'persistence' (etc.) beside two models verified over the same period differ:
``model_version`` joins the unique key of ``verification_score``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:00:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_KEY = ('forecaster', 'kind', 'period_start', 'period_end', 'lead_months', 'target_calendar_month', 'metric')


def upgrade() -> None:
    with op.batch_alter_table('verification_score', schema=None) as batch_op:
        batch_op.drop_constraint('uq_verification_score_key', type_='unique')
        batch_op.create_unique_constraint('uq_verification_score_key', ('model_version',) + OLD_KEY)


def downgrade() -> None:
    with op.batch_alter_table('verification_score', schema=None) as batch_op:
        batch_op.drop_constraint('uq_verification_score_key', type_='unique')
        batch_op.create_unique_constraint('uq_verification_score_key', OLD_KEY)
