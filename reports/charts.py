"""The report's charts, drawn with matplotlib's Agg canvas and returned as PNG bytes.

No pyplot (no global figure state, safe in worker threads). Figures are small
(about 750 px wide at 100 dpi, 256-colour PNG) so the self-contained HTML stays
a few hundred kB.
Text that comes from stored data (forecaster names) passes through
:func:`_plain` so a ``$`` is never read as matplotlib mathtext.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from enso.grids import NINO34_LAT, NINO34_LON
from enso.months import to_period, to_periods
from enso.nino34 import PHASES
from reports.data import BASELINE_LABELS, CurrentState, ForecastTable, SeasonalOutlookTable, SstMap, Verification

DPI = 100
WIDTH_IN = 7.6
PHASE_COLOURS = {"la_nina": "#2166ac", "neutral": "#8c8c8c", "el_nino": "#b2182b"}
MODEL_COLOUR = "#e66101"
FORECASTER_STYLES: dict[str, dict[str, object]] = {
    "persistence": {"color": "#404040", "linestyle": "--"},
    "damped_persistence": {"color": "#404040", "linestyle": ":"},
    "climatology": {"color": "#a6761d", "linestyle": "-."},
    "linear_eof": {"color": "#1b9e77", "linestyle": "-"},
}
MONTH_LETTERS = "JFMAMJJASOND"


def _plain(text: str) -> str:
    """Text shown literally by matplotlib (``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def forecaster_label(name: str) -> str:
    """Human label of a baseline forecaster (unknown names as given)."""
    return BASELINE_LABELS.get(name, name)


def _figure(height_in: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    """The figure as a 256-colour PNG: a third of the size of full colour, no visible difference for charts."""
    canvas = fig.canvas
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=256, dither=Image.Dither.NONE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _timestamps(index: pd.PeriodIndex) -> pd.DatetimeIndex:
    """Mid-month timestamps, so bars and points sit inside their month."""
    return index.to_timestamp() + pd.Timedelta(days=14)


def _phase_lines(ax: object, threshold: float) -> None:
    ax.axhspan(-threshold, threshold, color="#f0f0f0", zorder=0)  # type: ignore[attr-defined]
    for y, phase in ((threshold, "el_nino"), (-threshold, "la_nina")):
        ax.axhline(y, color=PHASE_COLOURS[phase], linewidth=0.8, linestyle="--", zorder=1)  # type: ignore[attr-defined]
    ax.axhline(0.0, color="#606060", linewidth=0.6, zorder=1)  # type: ignore[attr-defined]


def anomaly_history_png(current: CurrentState, threshold: float) -> bytes:
    """Monthly anomalies of the last months as bars coloured by the ±threshold band, with the ONI line (and
    the RONI line, dashed, when given)."""
    anomalies = current.recent_anomalies.dropna()
    fig = _figure(2.6)
    ax = fig.add_subplot()
    _phase_lines(ax, threshold)
    x = _timestamps(anomalies.index)
    colours = [PHASE_COLOURS["el_nino"] if v >= threshold else PHASE_COLOURS["la_nina"] if v <= -threshold
               else PHASE_COLOURS["neutral"] for v in anomalies.to_numpy()]
    ax.bar(x, anomalies.to_numpy(), width=25, color=colours, label="monthly anomaly", zorder=2)
    provisional = {to_period(m) for m in current.provisional_months}
    for period, when, value in zip(anomalies.index, x, anomalies.to_numpy()):
        if period in provisional:
            ax.bar([when], [value], width=25, color="white", edgecolor="black", hatch="////", zorder=3,
                   label=f"provisional (no {current.phase_index_label} yet)")
    if current.recent_oni is not None:
        oni = current.recent_oni.dropna()
        ax.plot(_timestamps(oni.index), oni.to_numpy(), color="black", linewidth=1.4, label="ONI", zorder=4)
    if current.recent_roni is not None and current.recent_roni.notna().any():
        roni = current.recent_roni.dropna()
        ax.plot(_timestamps(roni.index), roni.to_numpy(), color="#7b3294", linewidth=1.4, linestyle="--",
                label="RONI", zorder=4)
    ax.set_ylabel("Niño 3.4 anomaly (°C)")
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=3)
    ax.margins(x=0.01)
    limit = max(1.5, float(np.nanmax(np.abs(anomalies.to_numpy()))) + 0.3) if len(anomalies) else 1.5
    ax.set_ylim(-limit, limit)
    return _png(fig)


def plume_png(forecast: ForecastTable, recent_anomalies: pd.Series, threshold: float,
              baselines: pd.DataFrame | None = None, previous: ForecastTable | None = None,
              history_months: int = 24) -> bytes:
    """The forecast as a plume: recent observations, the model with its range, baselines, last month's forecast.

    Forecast lines start at the init month's observed anomaly so they read as
    continuations of the observed curve.
    """
    observed = recent_anomalies.dropna().iloc[-history_months:]
    init = to_period(forecast.init_month)
    start = float(observed.get(init, np.nan))
    leads = forecast.leads
    targets = pd.PeriodIndex(leads["target_month"], freq="M")
    x = _timestamps(pd.PeriodIndex([init]).append(targets))

    def joined(values: np.ndarray) -> np.ndarray:
        return np.concatenate([[start], np.asarray(values, dtype=np.float64)])

    fig = _figure(3.4)
    ax = fig.add_subplot()
    _phase_lines(ax, threshold)
    ax.plot(_timestamps(observed.index), observed.to_numpy(), color="black", linewidth=1.6, marker="o",
            markersize=2.5, label="observed", zorder=5)
    if forecast.has_range:
        ax.fill_between(x, joined(leads["anomaly_low"]), joined(leads["anomaly_high"]), color=MODEL_COLOUR,
                        alpha=0.22, linewidth=0, label=f"model {_plain(forecast.uncertainty) or 'range'}", zorder=2)
    if baselines is not None:
        for name in baselines.columns:
            style = FORECASTER_STYLES.get(str(name), {"color": "#7570b3", "linestyle": "-."})
            values = baselines[name].reindex(leads["lead"]).to_numpy()
            ax.plot(x, joined(values), linewidth=1.2, label=_plain(forecaster_label(str(name))), zorder=3, **style)
    if previous is not None:
        prev_x = _timestamps(pd.PeriodIndex(previous.leads["target_month"], freq="M"))
        ax.plot(prev_x, previous.leads["nino34_anomaly"].to_numpy(), color="#7b3294", linewidth=1.0,
                marker=".", markersize=4, alpha=0.8, label=f"last month's forecast ({previous.init_month})", zorder=3)
    ax.plot(x, joined(leads["nino34_anomaly"]), color=MODEL_COLOUR, linewidth=2.4, marker="o", markersize=3.5,
            label="model forecast", zorder=6)
    ax.axvline(_timestamps(pd.PeriodIndex([init]))[0], color="#606060", linewidth=0.8)
    ax.annotate(f"init {forecast.init_month}", xy=(_timestamps(pd.PeriodIndex([init]))[0], 1.0),
                xycoords=("data", "axes fraction"), xytext=(3, -10), textcoords="offset points", fontsize=8,
                color="#404040")
    ax.set_ylabel("Niño 3.4 anomaly (°C)")
    values = [observed.to_numpy(), leads["nino34_anomaly"].to_numpy()]
    if forecast.has_range:
        values += [leads["anomaly_low"].to_numpy(), leads["anomaly_high"].to_numpy()]
    limit = max(1.5, float(np.nanmax(np.abs(np.concatenate(values)))) + 0.3)
    ax.set_ylim(-limit, limit)
    ax.margins(x=0.01)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False, ncols=3)
    return _png(fig)


def map_colour_limit(*maps: SstMap | None) -> float:
    """A symmetric colour limit (°C, a multiple of 0.5, 1..4) shared by the given maps."""
    values = [np.abs(m.anomaly[np.isfinite(m.anomaly)]) for m in maps if m is not None]
    largest = max((float(v.max()) for v in values if v.size), default=1.0)
    return float(np.clip(np.ceil(largest * 2.0) / 2.0, 1.0, 4.0))


def sst_map_png(sst_map: SstMap, limit: float) -> bytes:
    """An SST anomaly map (land grey) with the Niño 3.4 box outlined."""
    lat, lon = np.asarray(sst_map.lat, dtype=np.float64), np.asarray(sst_map.lon, dtype=np.float64)
    aspect = (lat.max() - lat.min()) / max(lon.max() - lon.min(), 1.0)
    # Height chosen so the plot area has about the map's own aspect (the colour bar then matches it).
    fig = _figure(float(np.clip((WIDTH_IN - 1.7) * aspect + 0.75, 1.8, 5.0)))
    ax = fig.add_subplot()
    ax.set_facecolor("#c8c8c8")
    mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(sst_map.anomaly), cmap="RdBu_r", vmin=-limit,
                         vmax=limit, shading="nearest")
    box_lon = NINO34_LON if lon.min() >= 0 else (NINO34_LON[0] - 360.0, NINO34_LON[1] - 360.0)
    ax.add_patch(Rectangle((box_lon[0], NINO34_LAT[0]), box_lon[1] - box_lon[0], NINO34_LAT[1] - NINO34_LAT[0],
                           fill=False, edgecolor="black", linewidth=1.6))
    ax.annotate("Niño 3.4", xy=(box_lon[0], NINO34_LAT[1]), xytext=(0, 3), textcoords="offset points",
                fontsize=8)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    fig.colorbar(mesh, ax=ax, label="SST anomaly (°C)", pad=0.01)
    return _png(fig)


def skill_by_lead_png(verification: Verification) -> bytes:
    """ACC and RMSE by lead for the model and every baseline (two panels)."""
    fig = _figure(3.2)
    axes = fig.subplots(1, 2)
    for ax, metric, title in ((axes[0], "acc", "Anomaly correlation (higher is better)"),
                              (axes[1], "rmse", "RMSE, °C (lower is better)")):
        table = verification.by_lead(metric)
        for name in [verification.model_forecaster] + verification.baselines:
            if name not in table.columns or table[name].isna().all():
                continue
            is_model = name == verification.model_forecaster
            style = {"color": MODEL_COLOUR, "linestyle": "-", "linewidth": 2.4} if is_model else \
                {"linewidth": 1.3, **FORECASTER_STYLES.get(name, {"color": "#7570b3", "linestyle": "-."})}
            ax.plot(table.index, table[name].to_numpy(), marker="o", markersize=3, zorder=3 if is_model else 2,
                    label="Model" if is_model else _plain(forecaster_label(name)), **style)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("lead (months)")
        ax.set_xticks(range(1, int(table.index.max()) + 1) if len(table.index) else [])
        ax.grid(alpha=0.3)
    axes[0].axhline(0.0, color="#606060", linewidth=0.6)
    axes[1].set_ylim(bottom=0)
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)
    return _png(fig)


def skill_heatmap_png(verification: Verification, metric: str = "acc") -> bytes:
    """The model's score by target calendar month (rows) and lead (columns): shows the spring barrier."""
    rows = verification.scores.query(
        "forecaster == @verification.model_forecaster and metric == @metric and target_calendar_month > 0")
    table = rows.pivot_table(index="target_calendar_month", columns="lead", values="value",
                             aggfunc="first", dropna=False).reindex(range(1, 13))
    fig = _figure(3.6)
    ax = fig.add_subplot()
    ax.set_facecolor("#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(table.to_numpy(dtype=np.float64)), cmap="YlGnBu", vmin=0.0,
                      vmax=1.0, aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=np.float64)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if value > 0.6 else "black")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(12), [f"{MONTH_LETTERS[m - 1]}  ({m})" for m in range(1, 13)], fontsize=8)
    ax.set_xlabel("lead (months)")
    ax.set_ylabel("target calendar month")
    fig.colorbar(image, ax=ax, label="ACC" if metric == "acc" else metric, pad=0.01)
    return _png(fig)



PHASE_NAMES = {"la_nina": "La Niña", "neutral": "Neutral", "el_nino": "El Niño"}


def reliability_png(verification: Verification) -> bytes:
    """The model's reliability diagram, one panel per phase: observed frequency against forecast probability
    (mean of each populated bin) with the diagonal of perfect reliability, each point labelled with its count,
    and the counts per bin as grey bars (sharpness) on a second axis."""
    table = verification.reliability
    if table is None:
        raise ValueError("the verification has no reliability table")
    fig = _figure(3.0)
    axes = fig.subplots(1, len(PHASES), sharey=True)
    for ax, phase in zip(axes, PHASES):
        rows = table[(table["phase"] == phase) & (table["count"] > 0)]
        counts = ax.twinx()
        centres = rows["bin_centre"].to_numpy(dtype=np.float64)
        width = float(np.min(np.diff(np.unique(table["bin_centre"])))) if table["bin_centre"].nunique() > 1 else 0.1
        counts.bar(centres, rows["count"].to_numpy(), width=width * 0.9, color="#d9d9d9", zorder=0,
                   label="forecasts per bin")
        counts.set_yticks([])
        counts.set_ylim(0, max(1, int(rows["count"].max()) if len(rows) else 1) * 4)
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot([0, 1], [0, 1], color="#606060", linewidth=0.8, linestyle="--", label="perfect reliability")
        ax.plot(rows["mean_probability"], rows["observed_frequency"], color=PHASE_COLOURS[phase], marker="o",
                markersize=4, linewidth=1.6, label="model")
        for p, f, n in zip(rows["mean_probability"], rows["observed_frequency"], rows["count"]):
            ax.annotate(f"{int(n)}", xy=(p, f), xytext=(3, -9), textcoords="offset points", fontsize=6.5,
                        color="#404040")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(PHASE_NAMES[phase], fontsize=9, color=PHASE_COLOURS[phase])
        ax.set_xlabel("forecast probability")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed frequency")
    handles, labels = axes[0].get_legend_handles_labels()
    bars = fig.axes[-1].get_legend_handles_labels()  # the count axis of the last panel
    fig.legend(handles + bars[0], labels + bars[1], loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _png(fig)


def seasonal_outlook_png(outlook: SeasonalOutlookTable, climatology: pd.DataFrame | None = None) -> bytes:
    """CPC's familiar outlook chart: for each of the nine seasons three bars, the probability (%) of La Niña
    (blue), neutral (grey) and El Niño (red) of the season's 3-month mean of the phase index, each labelled;
    with ``climatology`` (phase frequencies per calendar month, :func:`enso.verify.phase_climatology`) a short
    black dash on each bar marks the climatological probability of that phase for the season's centre month."""
    seasons = outlook.seasons
    centres = to_periods(seasons["first_month"]) + 1
    x = np.arange(len(seasons))
    width = 0.27
    fig = _figure(3.3)
    ax = fig.add_subplot()
    for k, phase in enumerate(PHASES):
        where = x + (k - 1) * width
        values = 100.0 * seasons[f"p_{phase}"].to_numpy(dtype=np.float64)
        ax.bar(where, values, width=width * 0.92, color=PHASE_COLOURS[phase], label=PHASE_NAMES[phase], zorder=2)
        for xi, value in zip(where, values):
            ax.annotate(f"{value:.0f}", xy=(xi, value), xytext=(0, 2), textcoords="offset points", ha="center",
                        fontsize=6.5, color="#404040")
        if climatology is not None:
            expected = 100.0 * climatology.loc[centres.month, phase].to_numpy(dtype=np.float64)
            ax.hlines(expected, where - width / 2, where + width / 2, colors="black", linestyles="-",
                      linewidth=1.2, zorder=3, label="climatology" if k == 0 else None)
    ax.set_xticks(x, [f"{label}\n{centre.year}" for label, centre in zip(seasons["season_label"], centres)],
                  fontsize=8)
    ax.set_xlabel("season (3-month mean)")
    ax.set_ylabel("probability (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"ENSO phase of the {outlook.phase_index_label} by season, forecast from {outlook.init_month}",
                 fontsize=9)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, frameon=False, ncols=4)
    return _png(fig)
