-- Views for SQL users (PostgreSQL and SQLite), as the schema has them now. Migration 0002 created
-- latest_forecast and forecast_verification; 0005 added index_current and index_observation (the
-- index became append-only vintages) and re-created forecast_verification on top of them; 0008
-- added relative_index; 0009 added the forecast's Gaussian spread (nino34_anomaly_sd, °C, NULL where
-- the forecaster states none) to latest_forecast and forecast_verification; 0010 added
-- latest_seasonal_outlook (the table seasonal_outlook: CPC-style outlooks of every forecast).

-- The newest operational forecast for each lead: the latest init month, and of several
-- models for it the one written last.
CREATE VIEW latest_forecast AS
SELECT f.model_version, f.init_month, f.target_month, f.lead_months, f.nino34, f.nino34_anomaly,
       f.nino34_anomaly_sd, f.p_la_nina, f.p_neutral, f.p_el_nino, f.phase, f.base_period, f.created_at,
       f.flow_run_id
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
       f.nino34 AS forecast_nino34, f.nino34_anomaly AS forecast_anomaly,
       f.nino34_anomaly_sd AS forecast_anomaly_sd, f.phase AS forecast_phase,
       f.p_la_nina, f.p_neutral, f.p_el_nino,
       o.nino34 AS observed_nino34, o.anomaly AS observed_anomaly, o.oni AS observed_oni,
       o.phase AS observed_phase,
       f.nino34_anomaly - o.anomaly AS anomaly_error,
       CASE WHEN o.phase IS NULL THEN NULL WHEN o.phase = f.phase THEN 1 ELSE 0 END AS phase_hit
FROM forecast f
LEFT JOIN index_observation o ON o.month = f.target_month;

-- The current index of every product: the rows of its newest vintage (index_vintage.seq).
CREATE VIEW index_current AS
SELECT v.product, x.month, x.nino34, x.anomaly, x.oni, x.phase, v.format AS source, x.vintage_id,
       v.seq AS vintage_seq, v.stored_at AS updated_at
FROM index_value x
JOIN index_vintage v ON v.id = x.vintage_id
WHERE v.seq = (SELECT max(v2.seq) FROM index_vintage v2 WHERE v2.product = v.product);

-- The current Niño 3.4 index (product nino34), one row per month: what forecasts are verified against.
CREATE VIEW index_observation AS
SELECT month, product, nino34, anomaly, oni, phase, source, vintage_id, updated_at
FROM index_current
WHERE product = 'nino34';

-- The relative Niño 3.4 index and RONI (the phase index by default, ENSO_PHASE_INDEX=roni), one row per
-- month: CPC's monthly file (product 'relative') where it has the month; before its first month, the
-- relative index computed from the stored SST grids (product 'relative-grids'). Never mixed otherwise.
CREATE VIEW relative_index AS
SELECT c.month, c.anomaly AS relative_anomaly, c.oni AS roni, c.phase, c.product, c.source, c.vintage_id,
       c.updated_at
FROM index_current c
WHERE c.product = 'relative'
   OR (c.product = 'relative-grids'
       AND (c.month < (SELECT min(r.month) FROM index_current r WHERE r.product = 'relative')
            OR NOT EXISTS (SELECT 1 FROM index_current r WHERE r.product = 'relative')));

-- The newest operational CPC-style seasonal outlook, one row per season 1..9 (season s covers the
-- months init + s .. init + s + 2): the latest init month, and of several models the one written
-- last. mean and sd are °C of the 3-month mean of phase_index (RONI by default, or ONI).
CREATE VIEW latest_seasonal_outlook AS
SELECT s.model_version, s.init_month, s.season, s.season_label, s.first_month, s.last_month, s.phase_index,
       s.mean, s.sd, s.p_la_nina, s.p_neutral, s.p_el_nino, s.created_at, s.flow_run_id
FROM seasonal_outlook s
WHERE s.kind = 'operational'
  AND s.id = (SELECT s2.id FROM seasonal_outlook s2
              WHERE s2.kind = 'operational' AND s2.season = s.season
              ORDER BY s2.init_month DESC, s2.created_at DESC, s2.id DESC
              LIMIT 1);
