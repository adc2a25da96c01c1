"""models forecasts verification reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:05:32.772163
"""
from alembic import op
import sqlalchemy as sa

#: The views as this revision created them (db/sql/views.sql holds the current definitions; 0005 changed them).
VIEWS_SQL = """
-- The newest operational forecast for each lead: the latest init month, and of several
-- models for it the one written last.
CREATE VIEW latest_forecast AS
SELECT f.model_version, f.init_month, f.target_month, f.lead_months, f.nino34, f.nino34_anomaly,
       f.p_la_nina, f.p_neutral, f.p_el_nino, f.phase, f.base_period, f.created_at, f.flow_run_id
FROM forecast f
WHERE f.kind = 'operational'
  AND f.id = (SELECT f2.id FROM forecast f2
              WHERE f2.kind = 'operational' AND f2.lead_months = f.lead_months
              ORDER BY f2.init_month DESC, f2.created_at DESC, f2.id DESC
              LIMIT 1);

-- Every forecast beside what was observed for its target month, once known
-- (observed columns are NULL until the index holds the month; observed_phase is NULL
-- while the month's ONI is not known yet).
CREATE VIEW forecast_verification AS
SELECT f.model_version, f.kind, f.init_month, f.target_month, f.lead_months,
       f.nino34 AS forecast_nino34, f.nino34_anomaly AS forecast_anomaly, f.phase AS forecast_phase,
       f.p_la_nina, f.p_neutral, f.p_el_nino,
       o.nino34 AS observed_nino34, o.anomaly AS observed_anomaly, o.oni AS observed_oni,
       o.phase AS observed_phase,
       f.nino34_anomaly - o.anomaly AS anomaly_error,
       CASE WHEN o.phase IS NULL THEN NULL WHEN o.phase = f.phase THEN 1 ELSE 0 END AS phase_hit
FROM forecast f
LEFT JOIN index_observation o ON o.month = f.target_month;
"""


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('email_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('init_month', sa.Date(), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('sent', 'failed')", name=op.f('ck_email_delivery_status_values')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_delivery'))
    )
    with op.batch_alter_table('email_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_email_delivery_init_month', ['init_month'], unique=False)

    op.create_table('model',
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('preset', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('sst_source', sa.String(length=16), nullable=False),
    sa.Column('train_start', sa.Date(), nullable=False),
    sa.Column('train_end', sa.Date(), nullable=False),
    sa.Column('valid_end', sa.Date(), nullable=False),
    sa.Column('base_period', sa.String(length=16), nullable=False),
    sa.Column('normalisation', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('weights', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('device', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('promoted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("status IN ('candidate', 'champion', 'retired')", name=op.f('ck_model_status_values')),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_model'))
    )
    op.create_table('report',
    sa.Column('init_month', sa.Date(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('init_month', name=op.f('pk_report'))
    )
    op.create_table('verification_score',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('forecaster', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('lead_months', sa.Integer(), nullable=False),
    sa.Column('target_calendar_month', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_score')),
    sa.UniqueConstraint('forecaster', 'kind', 'period_start', 'period_end', 'lead_months', 'target_calendar_month', 'metric', name='uq_verification_score_key')
    )
    op.create_table('forecast',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('init_month', sa.Date(), nullable=False),
    sa.Column('target_month', sa.Date(), nullable=False),
    sa.Column('lead_months', sa.Integer(), nullable=False),
    sa.Column('nino34', sa.Float(), nullable=False),
    sa.Column('nino34_anomaly', sa.Float(), nullable=False),
    sa.Column('p_la_nina', sa.Float(), nullable=False),
    sa.Column('p_neutral', sa.Float(), nullable=False),
    sa.Column('p_el_nino', sa.Float(), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('base_period', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("kind IN ('operational', 'hindcast')", name=op.f('ck_forecast_kind_values')),
    sa.CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name=op.f('ck_forecast_phase_values')),
    sa.CheckConstraint('abs(p_la_nina + p_neutral + p_el_nino - 1.0) < 1e-6', name=op.f('ck_forecast_probabilities_sum_to_one')),
    sa.CheckConstraint('lead_months BETWEEN 1 AND 24', name=op.f('ck_forecast_lead_range')),
    sa.ForeignKeyConstraint(['model_version'], ['model.version'], name=op.f('fk_forecast_model_version_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast')),
    sa.UniqueConstraint('model_version', 'kind', 'init_month', 'target_month', name='uq_forecast_model_kind_init_target')
    )
    with op.batch_alter_table('forecast', schema=None) as batch_op:
        batch_op.create_index('ix_forecast_init_month', ['init_month'], unique=False)
        batch_op.create_index('ix_forecast_target_month', ['target_month'], unique=False)

    op.create_table('forecast_grid',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('init_month', sa.Date(), nullable=False),
    sa.Column('target_month', sa.Date(), nullable=False),
    sa.Column('nlat', sa.Integer(), nullable=False),
    sa.Column('nlon', sa.Integer(), nullable=False),
    sa.Column('lat', sa.LargeBinary(), nullable=False),
    sa.Column('lon', sa.LargeBinary(), nullable=False),
    sa.Column('values_zstd', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version'], ['model.version'], name=op.f('fk_forecast_grid_model_version_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_grid')),
    sa.UniqueConstraint('model_version', 'kind', 'init_month', name='uq_forecast_grid_model_kind_init')
    )

    for statement in _statements(VIEWS_SQL):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS forecast_verification")
    op.execute("DROP VIEW IF EXISTS latest_forecast")
    op.drop_table('forecast_grid')
    with op.batch_alter_table('forecast', schema=None) as batch_op:
        batch_op.drop_index('ix_forecast_target_month')
        batch_op.drop_index('ix_forecast_init_month')

    op.drop_table('forecast')
    op.drop_table('verification_score')
    op.drop_table('report')
    op.drop_table('model')
    with op.batch_alter_table('email_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_email_delivery_init_month')

    op.drop_table('email_delivery')
