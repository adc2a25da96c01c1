"""the CPC-style seasonal outlook of every forecast (table seasonal_outlook, view latest_seasonal_outlook)

Users read CPC's official ENSO outlook: the probabilities of La Niña, neutral and
El Niño for the nine overlapping 3-month seasons after the init month, of the
phase index (RONI since February 2026). Each forecast now stores its outlook
beside its monthly rows (written and replaced in the same transaction):
``seasonal_outlook`` holds one row per (model, kind, init month, season 1..9)
with the season's months and CPC label, the phase index, the Gaussian mean and
sd (°C) of the season's 3-month mean and the three probabilities
(:mod:`enso.outlook`). The view ``latest_seasonal_outlook`` shows the newest
operational one, one row per season. Forecasts written before this revision
have no outlook until they are rerun.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

LATEST_SEASONAL_OUTLOOK = """
CREATE VIEW latest_seasonal_outlook AS
SELECT s.model_version, s.init_month, s.season, s.season_label, s.first_month, s.last_month, s.phase_index,
       s.mean, s.sd, s.p_la_nina, s.p_neutral, s.p_el_nino, s.created_at, s.flow_run_id
FROM seasonal_outlook s
WHERE s.kind = 'operational'
  AND s.id = (SELECT s2.id FROM seasonal_outlook s2
              WHERE s2.kind = 'operational' AND s2.season = s.season
              ORDER BY s2.init_month DESC, s2.created_at DESC, s2.id DESC
              LIMIT 1)
"""


def upgrade() -> None:
    op.create_table('seasonal_outlook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('init_month', sa.Date(), nullable=False),
    sa.Column('season', sa.Integer(), nullable=False),
    sa.Column('season_label', sa.String(length=3), nullable=False),
    sa.Column('first_month', sa.Date(), nullable=False),
    sa.Column('last_month', sa.Date(), nullable=False),
    sa.Column('phase_index', sa.String(length=4), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('sd', sa.Float(), nullable=False),
    sa.Column('p_la_nina', sa.Float(), nullable=False),
    sa.Column('p_neutral', sa.Float(), nullable=False),
    sa.Column('p_el_nino', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("kind IN ('operational', 'hindcast', 'selection')",
                       name=op.f('ck_seasonal_outlook_kind_values')),
    sa.CheckConstraint("season BETWEEN 1 AND 9", name=op.f('ck_seasonal_outlook_season_range')),
    sa.CheckConstraint("phase_index IN ('roni', 'oni')", name=op.f('ck_seasonal_outlook_phase_index_values')),
    sa.CheckConstraint("sd > 0", name=op.f('ck_seasonal_outlook_sd_positive')),
    sa.CheckConstraint('abs(p_la_nina + p_neutral + p_el_nino - 1.0) < 1e-6',
                       name=op.f('ck_seasonal_outlook_probabilities_sum_to_one')),
    sa.ForeignKeyConstraint(['model_version'], ['model.version'],
                            name=op.f('fk_seasonal_outlook_model_version_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seasonal_outlook')),
    sa.UniqueConstraint('model_version', 'kind', 'init_month', 'season',
                        name='uq_seasonal_outlook_model_kind_init_season')
    )
    with op.batch_alter_table('seasonal_outlook', schema=None) as batch_op:
        batch_op.create_index('ix_seasonal_outlook_init_month', ['init_month'], unique=False)
    op.execute(LATEST_SEASONAL_OUTLOOK)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_seasonal_outlook")
    with op.batch_alter_table('seasonal_outlook', schema=None) as batch_op:
        batch_op.drop_index('ix_seasonal_outlook_init_month')
    op.drop_table('seasonal_outlook')
