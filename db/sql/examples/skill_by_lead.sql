-- Skill by lead over every verified forecast: RMSE of the Niño 3.4 anomaly (°C) and how often
-- the forecast phase was the observed one.
SELECT model_version, kind, lead_months,
       count(anomaly_error) AS n,
       sqrt(avg(anomaly_error * anomaly_error)) AS rmse,
       avg(phase_hit) AS phase_hit_rate
FROM forecast_verification
WHERE anomaly_error IS NOT NULL
GROUP BY model_version, kind, lead_months
ORDER BY model_version, kind, lead_months;
