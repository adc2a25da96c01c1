"""at most one champion model

Two promotions racing (two retrain runs, or a retrain beside `enso models
promote`) could each retire the champion they saw and crown their own model.
A partial unique index on ``model.status`` where it is 'champion' makes the
second one fail instead.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

WHERE = sa.text("status = 'champion'")


def upgrade() -> None:
    # A store that already lost such a race keeps the champion `enso models list` shows (newest promotion).
    op.execute("UPDATE model SET status = 'retired' WHERE status = 'champion' AND version NOT IN ("
               "SELECT version FROM model WHERE status = 'champion' ORDER BY promoted_at DESC NULLS LAST LIMIT 1)")
    op.create_index('uq_model_one_champion', 'model', ['status'], unique=True,
                    postgresql_where=WHERE, sqlite_where=WHERE)


def downgrade() -> None:
    op.drop_index('uq_model_one_champion', table_name='model')
