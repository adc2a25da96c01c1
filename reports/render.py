"""Render a :class:`~reports.data.ReportData` into one self-contained HTML report.

The report is a single file: charts are embedded as ``data:`` URIs, CSS is
inline, and nothing is fetched from anywhere (no script, font, stylesheet or
favicon), so it opens offline and survives mail clients. The same template is
rendered a second time with ``cid:`` image references for the email body
(:mod:`reports.email`), since many mail clients block ``data:`` images.

Jinja2 autoescaping is on: every stored string (model version, URLs, names)
reaches the page as text, never as markup.

Run ``python -m reports.render --example OUT.html`` to write an example report.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from enso.months import Month, to_period
from enso.nino34 import PHASES
from enso.verify import RELIABILITY_TOLERANCE, accuracy, gerrity, heidke, peirce, reliability_gap
from reports import charts
from reports.data import ReportData, Verification, example_report_data, report_file_name

PHASE_LABELS = {"la_nina": "La Niña", "neutral": "Neutral", "el_nino": "El Niño"}
#: Score metrics compared against the baselines, and which direction is better.
HIGHER_IS_BETTER = {"acc": True, "rmse": False}
#: Probabilistic scores shown in their own tables (not counted as shortfalls), and which direction is better.
PROBABILISTIC_HIGHER_IS_BETTER = {"crps": False, "bss_la_nina": True, "bss_neutral": True, "bss_el_nino": True}
#: The seasonal outlook's scores shown (by season), and which direction is better.
SEASONAL_HIGHER_IS_BETTER = {"seasonal_rpss": True, "seasonal_rps": False}
METRIC_LABELS = {"acc": "ACC", "rmse": "RMSE", "crps": "CRPS (°C)", "bss_la_nina": "Brier skill score, La Niña",
                 "bss_neutral": "Brier skill score, neutral", "bss_el_nino": "Brier skill score, El Niño",
                 "seasonal_rpss": "Seasonal RPSS", "seasonal_rps": "Seasonal RPS"}


@dataclass(frozen=True)
class RenderedReport:
    """A rendered report: the standalone HTML, the email variant and the chart PNGs.

    ``html`` embeds the charts as ``data:`` URIs; ``email_html`` refers to them
    as ``cid:<content_id(name)>``, to be sent with ``images`` as related parts.
    """

    init_month: Month
    html: str
    email_html: str
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return report_file_name(self.init_month)

    def content_id(self, name: str) -> str:
        """The Content-ID (without angle brackets) of chart ``name`` in the email."""
        return content_id(self.init_month, name)


def content_id(init_month: Month, name: str) -> str:
    """The Content-ID (without angle brackets) of a report's chart: unique per chart and month."""
    return f"{name}@enso-report-{init_month}"


@dataclass(frozen=True)
class Shortfall:
    """Leads at which the model scores worse than one baseline on one metric (all target months)."""

    baseline: str
    metric: str
    leads: tuple[int, ...]

    def sentence(self) -> str:
        comparison = "lower" if HIGHER_IS_BETTER[self.metric] else "higher"
        which = "lead" if len(self.leads) == 1 else "leads"
        return (f"The model's {METRIC_LABELS[self.metric]} is {comparison} (worse) than "
                f"{charts.forecaster_label(self.baseline)}'s at {which} {_join_numbers(self.leads)}.")


def _join_numbers(values: Sequence[int]) -> str:
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def shortfalls(verification: Verification) -> list[Shortfall]:
    """Where the model is worse than a baseline (ACC lower, RMSE higher), baseline by baseline."""
    out = []
    for metric, higher_better in HIGHER_IS_BETTER.items():
        table = verification.by_lead(metric)
        if verification.model_forecaster not in table.columns:
            continue
        model = table[verification.model_forecaster]
        for baseline in verification.baselines:
            if baseline not in table.columns:
                continue
            gap = (table[baseline] - model) if higher_better else (model - table[baseline])
            leads = tuple(int(k) for k in gap.index[gap.to_numpy() > 0])
            if leads:
                out.append(Shortfall(baseline, metric, leads))
    return out


# --------------------------------------------------------------------------- formatting

def _missing(value: object) -> bool:
    """None, NaN, NaT or pandas.NA (scalars only)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def signed(value: float | None, digits: int = 2) -> str:
    """``+0.42`` style; an en dash when missing."""
    return "–" if _missing(value) else f"{float(value):+.{digits}f}"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}f}"


def percent(value: float | None) -> str:
    return "–" if _missing(value) else f"{100.0 * float(value):.0f} %"


def phase_label(phase: object) -> str:
    return "not yet known" if _missing(phase) else PHASE_LABELS.get(str(phase), str(phase))


def month_name(month: object) -> str:
    """``Jan 2026`` from a Month, Period or ``YYYY-MM``."""
    return to_period(month).strftime("%b %Y")


def utc_time(when: dt.datetime | None) -> str:
    return "–" if when is None else when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def bar_widths(probabilities: Sequence[float]) -> list[int]:
    """Integer percentages summing to 100 (largest remainder), for stacked probability bars."""
    p = np.clip(np.nan_to_num(np.asarray(probabilities, dtype=np.float64)), 0.0, None)
    p = p / p.sum() * 100.0 if p.sum() > 0 else np.zeros_like(p)
    widths = np.floor(p).astype(int)
    for i in np.argsort(-(p - widths))[: 100 - int(widths.sum())] if p.sum() > 0 else []:
        widths[i] += 1
    return [int(w) for w in widths]


# --------------------------------------------------------------------------- view model

def _forecast_rows(data: ReportData) -> list[dict[str, object]]:
    rows = []
    for _, row in data.forecast.leads.iterrows():
        lead = int(row["lead"])
        target = to_period(row["target_month"])
        probs = [float(row[f"p_{p}"]) for p in PHASES]
        clim = (data.phase_climatology.loc[target.month, list(PHASES)].to_numpy(dtype=np.float64).tolist()
                if data.phase_climatology is not None else None)
        rows.append({
            "lead": lead, "target": month_name(target), "anomaly": row["nino34_anomaly"],
            "low": row.get("anomaly_low"), "high": row.get("anomaly_high"), "phase": row["phase"],
            "probabilities": list(zip(PHASES, probs, bar_widths(probs))),
            "climatology": list(zip(PHASES, clim, bar_widths(clim))) if clim is not None else None,
            "baselines": ({name: data.baselines.at[lead, name] if lead in data.baselines.index else None
                           for name in data.baselines.columns} if data.baselines is not None else {}),
        })
    return rows


def _skill_tables(verification: Verification, metrics: dict[str, bool] | None = None,
                  need_model: bool = True) -> list[dict[str, object]]:
    """Per metric (default :data:`HIGHER_IS_BETTER`): leads, and one row per forecaster (model first) with values
    and better-than-the-model flags. Without ``need_model`` a metric the model lacks (e.g. CRPS of a model that
    states no spread) is shown for the baselines alone."""
    tables = []
    for metric, higher_better in (metrics or HIGHER_IS_BETTER).items():
        table = verification.by_lead(metric).T
        if table.empty or (need_model and verification.model_forecaster not in table.index):
            continue
        model = (table.loc[verification.model_forecaster] if verification.model_forecaster in table.index
                 else pd.Series(np.nan, index=table.columns))
        rows = []
        for name in [verification.model_forecaster] + verification.baselines:
            if name not in table.index or table.loc[name].isna().all():
                continue
            values = table.loc[name]
            beats_model = (values > model) if higher_better else (values < model)
            rows.append({
                "label": "Model" if name == verification.model_forecaster else charts.forecaster_label(name),
                "is_model": name == verification.model_forecaster,
                "cells": [(values[k], bool(beats_model[k])) for k in table.columns],
            })
        tables.append({"metric": METRIC_LABELS[metric], "better": "higher" if higher_better else "lower",
                       "leads": [int(k) for k in table.columns], "rows": rows})
    return tables


def _reliability_summary(table: pd.DataFrame | None, min_count: int = 10) -> list[dict[str, object]]:
    """Per phase of a reliability table: the largest gap between observed frequency and forecast probability over
    bins of at least ``min_count`` forecasts, whether it is within :data:`enso.verify.RELIABILITY_TOLERANCE`, and
    the cases."""
    if table is None:
        return []
    rows = []
    for phase in PHASES:
        mine = table[table["phase"] == phase]
        gap = reliability_gap(mine, min_count)
        rows.append({"phase": phase, "gap": gap, "within": bool(np.isfinite(gap) and gap <= RELIABILITY_TOLERANCE),
                     "bins": int((mine["count"] >= min_count).sum()), "n": int(mine["count"].sum()),
                     "min_count": min_count})
    return rows


def _seasonal_rows(data: ReportData) -> list[dict[str, object]]:
    """One row per season of the seasonal outlook: its label and months, mean and sd, probabilities (with the
    climatological ones of its centre month where known)."""
    if data.seasonal_outlook is None:
        return []
    rows = []
    for _, row in data.seasonal_outlook.seasons.iterrows():
        first, last = to_period(row["first_month"]), to_period(row["last_month"])
        probs = [float(row[f"p_{p}"]) for p in PHASES]
        clim = (data.phase_climatology.loc[(first + 1).month, list(PHASES)].to_numpy(dtype=np.float64).tolist()
                if data.phase_climatology is not None else None)
        rows.append({
            "season": int(row["season"]), "label": f"{row['season_label']} {(first + 1).year}",
            "months": f"{month_name(first)} to {month_name(last)}", "mean": row["mean"], "sd": row["sd"],
            "probabilities": list(zip(PHASES, probs, bar_widths(probs))),
            "climatology": list(zip(PHASES, clim, bar_widths(clim))) if clim is not None else None,
        })
    return rows


def _contingency(verification: Verification) -> dict[str, object] | None:
    table = verification.contingency
    if table is None:
        return None
    counts = table.to_numpy(dtype=np.int64)
    return {
        "phases": list(PHASES),
        "rows": [(p, counts[i].tolist(), int(counts[i].sum())) for i, p in enumerate(PHASES)],
        "column_totals": counts.sum(axis=0).tolist(), "n": int(counts.sum()),
        "scores": [("Accuracy (proportion correct)", accuracy(table).value),
                   ("Heidke skill score", heidke(table).value),
                   ("Peirce skill score", peirce(table).value),
                   ("Gerrity skill score", gerrity(table).value)],
    }


def _outcome_rows(data: ReportData) -> list[dict[str, object]]:
    if data.outcomes is None:
        return []
    frame = data.outcomes.assign(_target=[to_period(m) for m in data.outcomes["target_month"]])
    frame = frame.sort_values(["_target", "lead"], ascending=[False, True])
    rows = []
    for _, row in frame.iterrows():
        observed_phase = None if _missing(row["observed_phase"]) else row["observed_phase"]
        error = row["forecast_anomaly"] - row["observed_anomaly"]
        rows.append({
            "init": str(to_period(row["init_month"])), "lead": int(row["lead"]),
            "target": month_name(row["_target"]), "forecast": row["forecast_anomaly"],
            "observed": row["observed_anomaly"], "error": error,
            "forecast_phase": row["forecast_phase"], "observed_phase": observed_phase,
            "hit": None if observed_phase is None else row["forecast_phase"] == observed_phase,
            "is_last_month": to_period(row["init_month"]) == to_period(data.init_month - 1) and int(row["lead"]) == 1,
        })
    return rows


def _charts(data: ReportData) -> dict[str, bytes]:
    """Every chart the data allows, by file name."""
    threshold = data.method.phase_threshold
    images = {
        "history.png": charts.anomaly_history_png(data.current, threshold),
        "plume.png": charts.plume_png(data.forecast, data.current.recent_anomalies, threshold,
                                      data.baselines, data.previous_forecast),
    }
    limit = charts.map_colour_limit(data.observed_map, data.predicted_map)
    if data.observed_map is not None:
        images["map_observed.png"] = charts.sst_map_png(data.observed_map, limit)
    if data.predicted_map is not None:
        images["map_predicted.png"] = charts.sst_map_png(data.predicted_map, limit)
    if data.seasonal_outlook is not None:
        images["seasonal_outlook.png"] = charts.seasonal_outlook_png(data.seasonal_outlook, data.phase_climatology)
    if data.verification is not None:
        images["skill_by_lead.png"] = charts.skill_by_lead_png(data.verification)
        if (data.verification.scores["target_calendar_month"] > 0).any():
            images["skill_heatmap.png"] = charts.skill_heatmap_png(data.verification)
        if data.verification.has_reliability:
            images["reliability.png"] = charts.reliability_png(data.verification)
    return images


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(signed=signed, number=number, percent=percent, phase_label=phase_label,
                       month_name=month_name, utc_time=utc_time, forecaster_label=charts.forecaster_label)
    return env


def _render_html(data: ReportData, images: dict[str, bytes], image_src: Callable[[str], str]) -> str:
    template = _environment().get_template("report.html.j2")
    verification = data.verification
    return template.render(
        data=data, images=images, src=image_src, phases=PHASES, phase_labels=PHASE_LABELS,
        forecast_rows=_forecast_rows(data),
        baseline_names=list(data.baselines.columns) if data.baselines is not None else [],
        shortfalls=shortfalls(verification) if verification is not None else [],
        skill_tables=_skill_tables(verification) if verification is not None else [],
        probabilistic_tables=(_skill_tables(verification, PROBABILISTIC_HIGHER_IS_BETTER, need_model=False)
                              if verification is not None else []),
        reliability_rows=_reliability_summary(verification.reliability) if verification is not None else [],
        seasonal_rows=_seasonal_rows(data),
        seasonal_tables=(_skill_tables(verification, SEASONAL_HIGHER_IS_BETTER)
                         if verification is not None and verification.has_seasonal_scores else []),
        seasonal_reliability_rows=(_reliability_summary(verification.seasonal_reliability)
                                   if verification is not None else []),
        reliability_tolerance=RELIABILITY_TOLERANCE,
        contingency=_contingency(verification) if verification is not None else None,
        outcomes=_outcome_rows(data),
    )


def render_report(data: ReportData) -> RenderedReport:
    """Render the report: standalone HTML (``data:`` charts), email HTML (``cid:`` charts) and the PNGs."""
    images = _charts(data)

    def data_uri(name: str) -> str:
        return "data:image/png;base64," + base64.b64encode(images[name]).decode("ascii")

    def cid(name: str) -> str:
        return "cid:" + content_id(data.init_month, name)

    return RenderedReport(init_month=data.init_month, html=_render_html(data, images, data_uri),
                          email_html=_render_html(data, images, cid), images=images)


def summary_text(data: ReportData) -> str:
    """A short plain-text summary of the report (the email's text part)."""
    current = data.current
    lines = [
        f"ENSO forecast initialised {data.init_month} (issued {utc_time(data.issued_at)})",
        "",
        *(f"STALE INPUT: {s.name}: newest month held {s.newest_month or 'none'}, though months up to "
          f"{s.overdue_month} are due (next file {s.url}). What to do: {s.advice}." for s in data.stale_inputs),
        *([""] if data.stale_inputs else []),
        f"Observed: Niño 3.4 anomaly {signed(current.nino34_anomaly)} °C in {current.anomaly_month}; "
        + (f"ONI {signed(current.oni)} °C in {current.oni_month}; " if current.oni_month is not None
           else "no ONI yet; ")
        + (f"RONI {signed(current.roni)} °C in {current.roni_month}. " if current.roni_month is not None
           else "no RONI yet. ")
        + (f"Phase (from {current.phase_index_label}): {phase_label(current.observed_phase)} in "
           f"{current.phase_month}." if current.phase_month is not None
           else f"No observed phase yet (no {current.phase_index_label})."),
        "",
        "Forecast (anomaly °C, phase, P(La Niña / neutral / El Niño)):",
    ]
    for _, row in data.forecast.leads.iterrows():
        probs = " / ".join(percent(row[f"p_{p}"]) for p in PHASES)
        lines.append(f"  lead {int(row['lead']):>2}  {to_period(row['target_month'])}  "
                     f"{signed(row['nino34_anomaly']):>6}  {phase_label(row['phase']):<8}  {probs}")
    if data.seasonal_outlook is not None:
        outlook = data.seasonal_outlook
        lines += ["", f"Seasonal outlook (CPC style; {outlook.phase_index_label} 3-month mean °C, "
                      "P(La Niña / neutral / El Niño)):"]
        for _, row in outlook.seasons.iterrows():
            probs = " / ".join(percent(row[f"p_{p}"]) for p in PHASES)
            lines.append(f"  {row['season_label']} {(to_period(row['first_month']) + 1).year}  "
                         f"{signed(row['mean']):>6}  {probs}")
    model = data.model
    lines += ["", f"Model {model.version} ({model.status_text}), trained on {model.training}."]
    if data.verification is None:
        lines.append("No verified forecasts yet: scores will appear once forecasts can be checked.")
    else:
        found = shortfalls(data.verification)
        lines += [s.sentence() for s in found] or [
            "The model scores at least as well as every baseline at every lead (ACC and RMSE)."]
    notes = data.provisional_notes
    if notes:
        lines += ["", "Provisional:"] + [f"  {n.month}: {n.what}" for n in notes]
    lines += ["", f"The full report is attached ({data.file_name})."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reports.render --example OUT.html [--first-month]``: write an example report."""
    parser = argparse.ArgumentParser(prog="python -m reports.render", description=__doc__.splitlines()[0])
    parser.add_argument("--example", metavar="OUT.html", type=Path, required=True,
                        help="write a report rendered from synthetic example data")
    parser.add_argument("--first-month", action="store_true",
                        help="render as a first operational month (no verification history)")
    args = parser.parse_args(argv)
    rendered = render_report(example_report_data(with_history=not args.first_month))
    args.example.write_text(rendered.html, encoding="utf-8")
    print(f"wrote {args.example} ({len(rendered.html.encode()) / 1024:.0f} kB, {len(rendered.images)} charts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
