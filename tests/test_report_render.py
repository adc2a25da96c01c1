"""The monthly HTML report: self-contained, escaped, complete, and honest about missing or weak skill."""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from enso.months import Month
from reports.data import ForecastTable, MonthSpan, ReportData, example_report_data
from reports.render import bar_widths, main, render_report, summary_text

HOSTILE_VERSION = "<script>alert(1)</script>"
HOSTILE_URL = 'https://example.org/"><img src=x onerror=alert(2)>'
#: Loads a resource when it appears as the value of these attributes.
BLOCKS = {"p", "div", "li", "tr", "td", "th", "br", "h1", "h2", "h3", "table", "ul"}
LOADING_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "background", "xlink:href", "formaction"}


class _Inventory(HTMLParser):
    """Every tag, and every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.loading: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in BLOCKS:
            self.text.append(" ")
        for name, value in attrs:
            if name in LOADING_ATTRIBUTES:
                self.loading.append((tag, name, value or ""))
            if name == "style" and value:
                self.styles.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _inventory(html: str) -> _Inventory:
    parser = _Inventory()
    parser.feed(html)
    return parser


def _text(html: str) -> str:
    """The page's text, whitespace collapsed, with a space between cells and blocks."""
    return " ".join("".join(_inventory(html).text).split())


@pytest.fixture(scope="module")
def data() -> ReportData:
    return example_report_data()


@pytest.fixture(scope="module")
def rendered(data: ReportData):
    return render_report(data)


def test_report_is_one_self_contained_file(rendered) -> None:
    page = _inventory(rendered.html)
    assert not {"script", "link", "iframe", "object", "embed", "base", "style"} & set(page.tags)
    assert all(tag == "img" and name == "src" for tag, name, _ in page.loading), page.loading
    assert all(value.startswith("data:image/png;base64,") for _, _, value in page.loading)
    assert not any("url(" in style or "@import" in style for style in page.styles)
    # Each chart is embedded once, byte for byte.
    embedded = [base64.b64decode(value.split(",", 1)[1]) for _, _, value in page.loading]
    assert sorted(embedded) == sorted(rendered.images.values())
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in embedded)
    assert len(rendered.html.encode()) < 900_000, "the report should stay a few hundred kB"


def test_email_variant_refers_to_every_chart_by_content_id(rendered) -> None:
    sources = [value for _, _, value in _inventory(rendered.email_html).loading]
    assert sorted(sources) == sorted("cid:" + rendered.content_id(name) for name in rendered.images)
    assert "data:" not in rendered.email_html


def test_sections_appear_in_order(rendered) -> None:
    text = _text(rendered.html)
    headings = ["Data cut-off", "Current state", "Forecast", "Sea surface temperature anomalies",
                "Verification", "Past forecasts against what happened", "Method and caveats", "Data provenance"]
    positions = [text.find(h) for h in headings]
    assert all(p >= 0 for p in positions), dict(zip(headings, positions))
    assert positions == sorted(positions)


def test_header_states_cutoffs_model_and_periods(data: ReportData, rendered) -> None:
    text = _text(rendered.html)
    for source in data.sources:
        assert source.name in text and source.url in text and source.sha256 in text
    assert data.model.version in text
    assert f"Training period {data.model.training}" in text
    assert f"Selection (validation) period {data.model.selection}" in text
    assert f"init months {data.verification.period}" in text


def test_forecast_table_shows_every_lead_with_probabilities_and_climatology(data: ReportData, rendered) -> None:
    text = _text(rendered.html)
    clim = data.phase_climatology
    for _, row in data.forecast.leads.iterrows():
        target = row["target_month"]
        assert f"{row['lead']} {target.strftime('%b %Y')} {row['nino34_anomaly']:+.2f}" in text
        for phase in ("la_nina", "neutral", "el_nino"):
            assert f"{100 * row[f'p_{phase}']:.0f} % clim {100 * clim.at[target.month, phase]:.0f} %" in text


def test_bar_widths_are_whole_percentages_summing_to_100() -> None:
    rng = np.random.default_rng(3)
    for p in rng.dirichlet([0.5, 1.0, 0.5], size=200):
        widths = bar_widths(p)
        assert sum(widths) == 100
        assert all(abs(w - 100 * q) < 1.0 for w, q in zip(widths, p))


def test_hostile_strings_are_escaped(data: ReportData) -> None:
    hostile = replace(data, model=replace(data.model, version=HOSTILE_VERSION),
                      sources=(replace(data.sources[0], url=HOSTILE_URL),) + data.sources[1:])
    rendered = render_report(hostile)
    for html in (rendered.html, rendered.email_html):
        assert HOSTILE_VERSION not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        page = _inventory(html)
        assert "script" not in page.tags
        assert HOSTILE_VERSION in "".join(page.text)
        assert HOSTILE_URL in "".join(page.text)


def test_stored_names_with_mathtext_characters_draw(data: ReportData) -> None:
    """A forecaster named with ``$`` and ``^`` must not break matplotlib (mathtext) or the page."""
    scores = data.verification.scores
    odd = scores[scores["forecaster"] == "persistence"].assign(forecaster="lin$ear^_{eof")
    verification = replace(data.verification, scores=pd.concat([scores, odd], ignore_index=True))
    rendered = render_report(replace(data, verification=verification))
    assert "lin$ear^_{eof" in "".join(_inventory(rendered.html).text)


def test_verification_shows_a_reliability_diagram_and_the_brier_skill_and_crps_tables(data: ReportData,
                                                                                       rendered) -> None:
    from io import BytesIO

    from PIL import Image

    from enso.verify import reliability_gap

    verification = data.verification
    assert verification.has_reliability
    png = rendered.images["reliability.png"]
    assert Image.open(BytesIO(png)).size[0] >= 700
    page = _inventory(rendered.html)
    alts = [value for tag, name, value in page.loading]
    assert any(v == "data:image/png;base64," + base64.b64encode(png).decode("ascii") for v in alts)
    assert 'alt="Reliability diagram: observed frequency against forecast probability for each phase"' in rendered.html
    text = _text(rendered.html)
    headings = ["Probabilistic scores: Brier skill score and CRPS", "CRPS (°C) by lead",
                "Brier skill score, La Niña by lead", "Brier skill score, neutral by lead",
                "Brier skill score, El Niño by lead", "Reliability of the phase probabilities"]
    positions = [text.find(h) for h in headings]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(zip(headings, positions))
    assert "observed phase frequencies per calendar month over 1970-01 to 1999-12" in text  # the stated reference
    by_lead = verification.by_lead("bss_el_nino")
    model_row = " ".join(f"{v:.2f}" for v in by_lead[verification.model_forecaster])
    assert f"Model {model_row}" in text
    crps = verification.by_lead("crps")
    assert f"Persistence {' '.join(f'{v:.2f}' for v in crps['persistence'])}" in text
    assert "climatology" not in crps.columns  # no spread, no CRPS
    for phase, label in (("la_nina", "La Niña"), ("neutral", "Neutral"), ("el_nino", "El Niño")):
        gap = reliability_gap(verification.reliability[verification.reliability["phase"] == phase], 10)
        assert f"{label} {gap:.2f}" in text


def test_the_reliability_diagram_needs_a_table(data: ReportData) -> None:
    from reports import charts

    with pytest.raises(ValueError, match="no reliability table"):
        charts.reliability_png(replace(data.verification, reliability=None))
    rendered = render_report(replace(data, verification=replace(data.verification, reliability=None)))
    assert "reliability.png" not in rendered.images and "Reliability of the phase probabilities" not in rendered.html
    assert "Brier skill score, El Niño by lead" in rendered.html
    with pytest.raises(ValueError, match="lacks columns"):
        replace(data.verification, reliability=data.verification.reliability.drop(columns=["count"]))


def test_first_month_without_history_says_so(data: ReportData) -> None:
    first = example_report_data(with_history=False)
    assert first.verification is None and first.outcomes is None and first.previous_forecast is None
    rendered = render_report(first)
    text = _text(rendered.html)
    assert "No verified forecasts yet" in text
    assert "No earlier forecast has an observed target month yet" in text
    assert "no champion yet: newest model used" in text
    assert "Scoring period none yet" in text
    assert not {"skill_by_lead.png", "skill_heatmap.png", "reliability.png"} & set(rendered.images)
    assert "No verified forecasts yet" in summary_text(first)


def test_provisional_index_month_is_flagged(data: ReportData, rendered) -> None:
    newest = data.current.anomaly_month
    assert data.current.phase_index == "roni" and data.current.roni_month < newest
    text = _text(rendered.html)
    assert "Provisional values" in text
    assert f"{newest}: Niño 3.4 anomaly of {newest} is in, but its RONI and observed phase need {newest + 1}" in text
    assert "newest month: no RONI yet" in text
    assert f"{newest}: Niño 3.4 anomaly of {newest} is in" in summary_text(data)


def test_month_whose_phase_index_is_known_is_not_flagged(data: ReportData) -> None:
    """A month is provisional while the index that defines the phase (here RONI, then ONI) lacks it."""
    known = data.current.anomaly_month
    settled = replace(data, current=replace(data.current, roni_month=known), provisional=())
    assert settled.provisional_notes == ()
    text = _text(render_report(settled).html)
    assert "Provisional values" not in text and "no RONI yet" not in text
    by_oni = replace(data, current=replace(data.current, phase_index="oni"), provisional=())
    assert [n.what for n in by_oni.provisional_notes] == [
        f"Niño 3.4 anomaly of {known} is in, but its ONI and observed phase need {known + 1}"]
    by_oni = replace(by_oni, current=replace(by_oni.current, oni_month=known))
    assert by_oni.provisional_notes == ()


def test_current_state_shows_oni_and_roni_side_by_side_and_says_which_defines_the_phase(data: ReportData,
                                                                                      rendered) -> None:
    current = data.current
    assert current.roni is not None and current.oni is not None and current.roni != current.oni
    cells = {cell: _text(rendered.html.split(f'id="{cell}"', 1)[1].split("</td>", 1)[0])
             for cell in ("current-oni", "current-roni", "current-phase")}
    assert f"{current.oni:+.2f} °C" in cells["current-oni"] and "ONI" in cells["current-oni"]
    assert f"{current.roni:+.2f} °C" in cells["current-roni"] and "RONI" in cells["current-roni"]
    assert "Observed phase (from RONI)" in cells["current-phase"]
    text = _text(rendered.html)
    assert f"The phase here is defined by RONI ({current.phase_source})" in text
    assert "columns: the observed phase (from RONI)" in text and "From the RONI centred on the month" in text
    assert (f"ONI {current.oni:+.2f} °C in {current.oni_month}; RONI {current.roni:+.2f} °C in "
            f"{current.roni_month}. Phase (from RONI): El Niño in {current.roni_month}.") in summary_text(data)
    by_oni = render_report(replace(data, current=replace(current, phase_index="oni", phase_source="")))
    text = _text(by_oni.html)
    assert "Observed phase (from ONI)" in text and "The phase here is defined by ONI." in text
    assert "columns: the observed phase (from ONI)" in text


def test_scores_overlapping_the_training_period_are_flagged(data: ReportData, rendered) -> None:
    assert data.scores_out_of_sample
    assert "not out of sample" not in _text(rendered.html)
    overlapping = replace(data, verification=replace(data.verification, period=MonthSpan.parse("1985-01", "2024-11")))
    assert overlapping.scores_out_of_sample is False
    assert "These scores are not out of sample: the scored init months (1985-01 to 2024-11) overlap" in \
        _text(render_report(overlapping).html)


def _worse_leads(scores: pd.DataFrame, model: str, baseline: str, metric: str) -> list[int]:
    table = scores.query("target_calendar_month == 0 and metric == @metric").pivot_table(
        index="lead", columns="forecaster", values="value")
    worse = table[model] > table[baseline] if metric == "rmse" else table[model] < table[baseline]
    return [int(k) for k in table.index[worse]]


def test_report_says_plainly_where_the_model_is_worse_than_a_baseline(data: ReportData) -> None:
    verification = data.verification
    model = verification.model_forecaster
    scores = verification.scores.copy()
    persistence_rmse = scores.query("forecaster == 'persistence' and metric == 'rmse'").set_index(
        ["lead", "target_calendar_month"])["value"]
    chosen = (scores["forecaster"] == model) & (scores["metric"] == "rmse") & scores["lead"].isin([3, 7])
    keys = list(zip(scores.loc[chosen, "lead"], scores.loc[chosen, "target_calendar_month"]))
    scores.loc[chosen, "value"] = persistence_rmse.loc[keys].to_numpy() + 0.1
    weak = replace(data, verification=replace(verification, scores=scores))
    text = _text(render_report(weak).html)
    summary = summary_text(weak)
    for baseline in ("persistence", "damped_persistence", "climatology"):
        leads = _worse_leads(scores, model, baseline, "rmse")
        label = {"persistence": "Persistence", "damped_persistence": "Damped persistence",
                 "climatology": "Climatology"}[baseline]
        if not leads:
            assert f"higher (worse) than {label}'s" not in text
            continue
        listed = leads[0] if len(leads) == 1 else ", ".join(map(str, leads[:-1])) + f" and {leads[-1]}"
        which = "lead" if len(leads) == 1 else "leads"
        sentence = f"The model's RMSE is higher (worse) than {label}'s at {which} {listed}."
        assert sentence in text and sentence in summary
    assert {3, 7} <= set(_worse_leads(scores, model, "persistence", "rmse"))
    assert "at least as well as every baseline" not in text


def test_report_without_shortfalls_says_the_model_beats_the_baselines(data: ReportData, rendered) -> None:
    verification = data.verification
    for baseline in verification.baselines:
        assert not _worse_leads(verification.scores, verification.model_forecaster, baseline, "rmse")
    text = _text(rendered.html)
    expect_ok = not any(_worse_leads(verification.scores, verification.model_forecaster, b, "acc")
                        for b in verification.baselines if b != "climatology")
    assert ("at least as well as every baseline" in text) == expect_ok


def test_contingency_table_and_outcomes_are_shown(data: ReportData, rendered) -> None:
    text = _text(rendered.html)
    table = data.verification.contingency
    assert f"n = {int(table.to_numpy().sum())}" in text
    assert f"El Niño {' '.join(str(int(c)) for c in table.loc['el_nino'])} {int(table.loc['el_nino'].sum())}" in text
    last = data.outcomes[(data.outcomes["lead"] == 1)
                         & (data.outcomes["init_month"] == pd.Period(str(data.init_month - 1), "M"))]
    assert len(last) == 1
    assert f"{data.init_month - 1} (last month's) 1 {last['forecast_anomaly'].iloc[0]:+.2f}" in text


def test_bad_input_is_rejected_with_a_clear_message(data: ReportData) -> None:
    leads = data.forecast.leads.copy()
    leads.loc[leads["lead"] == 4, "p_neutral"] += 0.2
    with pytest.raises(ValueError, match=r"forecast from 2025-12 .*do not sum to 1 at leads \[4\]"):
        ForecastTable(data.init_month, data.model.version, leads)
    shifted = data.forecast.leads.assign(target_month=data.forecast.leads["target_month"] + 1)
    with pytest.raises(ValueError, match="not init month \\+ lead"):
        ForecastTable(data.init_month, data.model.version, shifted)
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(data, issued_at=dt.datetime(2026, 1, 8, 9, 30))
    with pytest.raises(ValueError, match="forecast is from 2025-12"):
        replace(data, init_month=Month.parse("2025-11"))


def test_example_command_writes_a_report(tmp_path, capsys) -> None:
    out = tmp_path / "example.html"
    assert main(["--example", str(out), "--first-month"]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "No verified forecasts yet" in html
    assert re.search(r"wrote .*example\.html \(\d+ kB, \d charts\)", capsys.readouterr().out)


def test_the_seasonal_outlook_section_has_cpcs_bar_chart_and_a_row_per_season(data: ReportData, rendered) -> None:
    from io import BytesIO

    from PIL import Image

    outlook = data.seasonal_outlook
    assert outlook is not None and outlook.phase_index == "roni" and len(outlook.seasons) == 9
    png = rendered.images["seasonal_outlook.png"]
    assert Image.open(BytesIO(png)).size[0] >= 700
    assert 'alt="Seasonal outlook: probabilities of La Niña, neutral and El Niño by 3-month season"' in rendered.html
    text = _text(rendered.html)
    headings = ["Forecast", "Seasonal outlook (CPC style)", "Sea surface temperature anomalies"]
    positions = [text.find(h) for h in headings]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(zip(headings, positions))
    section = text[positions[1]:positions[2]]
    assert "3-month mean of the RONI" in section
    clim = data.phase_climatology
    for _, row in outlook.seasons.iterrows():
        centre = row["first_month"] + 1
        cells = f"{row['season_label']} {centre.year} {row['first_month'].strftime('%b %Y')} to " \
                f"{row['last_month'].strftime('%b %Y')} {row['mean']:+.2f} {row['sd']:.2f}"
        assert cells in section, cells
        assert f"{100 * row['p_el_nino']:.0f} % clim {100 * clim.at[centre.month, 'el_nino']:.0f} %" in section
    assert "Seasonal outlook (CPC style; RONI 3-month mean" in summary_text(data)


def test_the_verification_shows_the_seasonal_rpss_by_season_and_its_reliability(data: ReportData, rendered) -> None:
    text = _text(rendered.html)
    start = text.find("Seasonal outlook (CPC style): RPSS and reliability")
    assert start > text.find("Reliability of the phase probabilities") > 0
    rpss = data.verification.by_lead("seasonal_rpss")
    assert list(rpss.index) == list(range(1, 10))
    model_row = " ".join(f"{v:.2f}" for v in rpss[data.verification.model_forecaster])
    assert f"Seasonal RPSS by season (higher is better) 1 2 3 4 5 6 7 8 9 Model {model_row} Climatology 0.00" \
        in text[start:]
    assert "Seasonal reliability, phase" in text[start:]


def test_a_report_without_a_seasonal_outlook_says_so(data: ReportData) -> None:
    from reports.data import SeasonalOutlookTable

    rendered = render_report(replace(data, seasonal_outlook=None))
    assert "seasonal_outlook.png" not in rendered.images
    assert "No seasonal outlook is stored for this forecast" in _text(rendered.html)
    seasons = data.seasonal_outlook.seasons
    earlier = seasons.assign(first_month=seasons["first_month"] - 1, last_month=seasons["last_month"] - 1)
    with pytest.raises(ValueError, match="seasonal outlook is from 2025-11"):
        replace(data, seasonal_outlook=SeasonalOutlookTable(Month.parse("2025-11"), "roni", earlier))
    with pytest.raises(ValueError, match="not init month \\+ season"):
        SeasonalOutlookTable(Month.parse("2025-10"), "roni", earlier)
