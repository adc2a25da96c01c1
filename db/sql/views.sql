-- Views for SQL users (PostgreSQL and SQLite). Created by migration 0002.

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
