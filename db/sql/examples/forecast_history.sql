-- Every operational forecast of one target month (here December 2024), oldest init month first:
-- how the forecast changed as the month came closer.
SELECT init_month, lead_months, nino34_anomaly, phase, p_la_nina, p_neutral, p_el_nino, model_version
FROM forecast
WHERE kind = 'operational' AND target_month = DATE '2024-12-01'
ORDER BY init_month, created_at;
