-- The newest CPC-style seasonal outlook: for each of the nine overlapping 3-month seasons after the init
-- month, the probability (%) of La Niña, neutral and El Niño of the season's mean of the phase index
-- (phase_index: 'roni', CPC's official index, by default), its forecast mean and spread (°C).
SELECT season, season_label, first_month, last_month, phase_index,
       round(100 * p_la_nina) AS la_nina_pct, round(100 * p_neutral) AS neutral_pct,
       round(100 * p_el_nino) AS el_nino_pct, mean, sd, init_month, model_version
FROM latest_seasonal_outlook
ORDER BY season;
