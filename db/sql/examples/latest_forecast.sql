-- The newest operational forecast, one row per lead (months ahead of the init month).
SELECT * FROM latest_forecast ORDER BY lead_months;
