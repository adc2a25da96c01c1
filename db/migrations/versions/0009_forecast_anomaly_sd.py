"""the Gaussian spread of every forecast (forecast.nino34_anomaly_sd, shown by the forecast views) and
forecasts of kind 'selection'

A model trained on rolling windows has no out-of-sample months left for hindcasts
until new data arrive; its forecasts of its own selection months, made with the
weights selection scored (before any refit), are stored with kind ``selection`` so
that its skill can be verified and reported from the day it is trained.

A forecast's phase probabilities come from a Gaussian distribution of its
anomaly; ``nino34_anomaly_sd`` (°C, nullable) stores that distribution's
standard deviation, so the continuous ranked probability score (CRPS) of the
forecast can be computed from the store. Rows written before this revision, and
forecasters that state no spread, hold NULL. The views ``latest_forecast``
(``nino34_anomaly_sd``) and ``forecast_verification`` (``forecast_anomaly_sd``)
show it beside the anomaly; they are re-created for that.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

LATEST_FORECAST = """
CREATE VIEW latest_forecast AS
SELECT f.model_version, f.init_month, f.target_month, f.lead_months, f.nino34, f.nino34_anomaly,
       f.nino34_anomaly_sd, f.p_la_nina, f.p_neutral, f.p_el_nino, f.phase, f.base_period, f.created_at,
       f.flow_run_id
FROM forecast f
WHERE f.kind = 'operational'
  AND f.id = (SELECT f2.id FROM forecast f2
              WHERE f2.kind = 'operational' AND f2.lead_months = f.lead_months
              ORDER BY f2.init_month DESC, f2.created_at DESC, f2.id DESC
              LIMIT 1)
"""

FORECAST_VERIFICATION = """
CREATE VIEW forecast_verification AS
SELECT f.model_version, f.kind, f.init_month, f.target_month, f.lead_months,
       f.nino34 AS forecast_nino34, f.nino34_anomaly AS forecast_anomaly,
       f.nino34_anomaly_sd AS forecast_anomaly_sd, f.phase AS forecast_phase,
       f.p_la_nina, f.p_neutral, f.p_el_nino,
       o.nino34 AS observed_nino34, o.anomaly AS observed_anomaly, o.oni AS observed_oni,
       o.phase AS observed_phase,
       f.nino34_anomaly - o.anomaly AS anomaly_error,
       CASE WHEN o.phase IS NULL THEN NULL WHEN o.phase = f.phase THEN 1 ELSE 0 END AS phase_hit
FROM forecast f
LEFT JOIN index_observation o ON o.month = f.target_month
"""

#: The views as revision 0005 left them (restored by the downgrade).
LATEST_FORECAST_0005 = """
CREATE VIEW latest_forecast AS
SELECT f.model_version, f.init_month, f.target_month, f.lead_months, f.nino34, f.nino34_anomaly,
       f.p_la_nina, f.p_neutral, f.p_el_nino, f.phase, f.base_period, f.created_at, f.flow_run_id
FROM forecast f
WHERE f.kind = 'operational'
  AND f.id = (SELECT f2.id FROM forecast f2
              WHERE f2.kind = 'operational' AND f2.lead_months = f.lead_months
              ORDER BY f2.init_month DESC, f2.created_at DESC, f2.id DESC
              LIMIT 1)
"""

FORECAST_VERIFICATION_0005 = """
CREATE VIEW forecast_verification AS
SELECT f.model_version, f.kind, f.init_month, f.target_month, f.lead_months,
       f.nino34 AS forecast_nino34, f.nino34_anomaly AS forecast_anomaly, f.phase AS forecast_phase,
       f.p_la_nina, f.p_neutral, f.p_el_nino,
       o.nino34 AS observed_nino34, o.anomaly AS observed_anomaly, o.oni AS observed_oni,
       o.phase AS observed_phase,
       f.nino34_anomaly - o.anomaly AS anomaly_error,
       CASE WHEN o.phase IS NULL THEN NULL WHEN o.phase = f.phase THEN 1 ELSE 0 END AS phase_hit
FROM forecast f
LEFT JOIN index_observation o ON o.month = f.target_month
"""


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS forecast_verification")
    op.execute("DROP VIEW IF EXISTS latest_forecast")


def upgrade() -> None:
    _drop_views()  # SQLite re-creates a table to alter it, which views on it would block
    with op.batch_alter_table('forecast', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nino34_anomaly_sd', sa.Float(), nullable=True))
        batch_op.drop_constraint(op.f('ck_forecast_kind_values'), type_='check')
        batch_op.create_check_constraint(op.f('ck_forecast_kind_values'), "kind IN ('operational', 'hindcast', 'selection')")
    op.execute(LATEST_FORECAST)
    op.execute(FORECAST_VERIFICATION)


def downgrade() -> None:
    _drop_views()
    op.execute("DELETE FROM forecast WHERE kind = 'selection'")
    with op.batch_alter_table('forecast', schema=None) as batch_op:
        batch_op.drop_column('nino34_anomaly_sd')
        batch_op.drop_constraint(op.f('ck_forecast_kind_values'), type_='check')
        batch_op.create_check_constraint(op.f('ck_forecast_kind_values'), "kind IN ('operational', 'hindcast')")
    op.execute(LATEST_FORECAST_0005)
    op.execute(FORECAST_VERIFICATION_0005)
