-- Prefect's own database beside the store (run once, when the PostgreSQL volume is initialised).
CREATE DATABASE prefect;
