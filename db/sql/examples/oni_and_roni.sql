-- ONI and RONI side by side, where their phases disagree: the months in which the warming of the
-- whole tropics (which RONI removes) moved the traditional index across a threshold. RONI defines
-- the phase by default (ENSO_PHASE_INDEX=roni); roni_from says whether the month comes from CPC's
-- file ('relative') or was computed from the stored grids ('relative-grids').
SELECT o.month, o.oni, o.phase AS oni_phase, r.roni, r.phase AS roni_phase, r.product AS roni_from
FROM index_observation o
JOIN relative_index r ON r.month = o.month
WHERE o.phase IS DISTINCT FROM r.phase
ORDER BY o.month;
