"""The stale-input alarm: current / late / stale per input, `enso status` and `enso ingest`, the monthly run
stopping at once on a stale input, and the report's banner."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import opened_engine
from db.ingest import backfill, ingest_index
from db.migrate import upgrade
from db.status import StaleInputs, check_inputs, input_freshness, store_status
from enso.config import Settings
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month
from enso.publication import (
    CURRENT,
    LATE,
    STALE,
    PublicationLag,
    freshness,
    is_overdue,
    newest_due_month,
)
from reports.data import StaleInput, example_report_data
from reports.render import render_report, summary_text

CPC = PublicationLag("NOAA CPC", 8)
START, END = Month.of(2026, 7), Month.of(2026, 10)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("now, newest, state", [
    (utc(2026, 12, 5, 12), Month.of(2026, 11), CURRENT),
    (utc(2026, 12, 5, 12), Month.of(2026, 10), LATE),       # November is not due before the 8th
    (utc(2026, 12, 8, 23, 59), Month.of(2026, 10), LATE),   # ... all through the 8th
    (utc(2026, 12, 9, 0, 1), Month.of(2026, 10), STALE),    # ... and overdue from the 9th
    (utc(2026, 12, 5, 12), Month.of(2026, 9), STALE),       # October was due on 8 November
    (utc(2026, 12, 5, 12), Month.of(2027, 1), CURRENT),
    (utc(2026, 12, 5, 12), None, STALE),
    (utc(2027, 1, 9), Month.of(2026, 11), STALE),           # across the year
    (utc(2027, 1, 7), Month.of(2026, 11), LATE),
])
def test_current_late_and_stale(now: dt.datetime, newest: Month | None, state: str) -> None:
    assert freshness(newest, now, CPC) == state


def test_due_months_and_publication_days() -> None:
    assert newest_due_month(utc(2026, 12, 8), CPC) == Month.of(2026, 10)
    assert newest_due_month(utc(2026, 12, 9), CPC) == Month.of(2026, 11)
    assert CPC.due_date(Month.of(2026, 12)) == dt.date(2027, 1, 8)
    assert is_overdue(Month.of(2026, 6), utc(2026, 12, 1), CPC)       # the v5 file stopped at 2026-06
    assert not is_overdue(Month.of(2026, 12), utc(2026, 12, 20), CPC)  # the month is not over
    with pytest.raises(ValueError, match="must be 1..28"):
        PublicationLag("somebody", 31)


# ----------------------------------------------------------------------------- a store and its inputs


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stale-mirror")
    write_mirror(root, START, END, seed=9)
    return root


@pytest.fixture
def filled(mirror_root: Path, tmp_path: Path):
    """A SQLite store holding COBE grids and the index to 2026-10, with settings pointing at their mirror."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    with MirrorServer(mirror_root) as srv, opened_engine(url) as engine:
        settings = Settings(database_url=url, data_dir=tmp_path / "var", http_retries=0, http_timeout=5,
                            **srv.settings_overrides())
        assert backfill(engine, settings, "cobe", START, END, progress=False).complete
        assert ingest_index(engine, settings).ok
        yield engine, settings, srv


def test_freshness_of_each_input_names_the_url_and_what_to_change(filled) -> None:
    engine, settings, srv = filled
    # 9 December: CPC's November index was due yesterday; JMA's November grid is due on the 10th.
    grids, index = input_freshness(engine, settings, utc(2026, 12, 9, 6))
    assert (grids.name, grids.state, grids.newest, grids.expected) == ("cobe SST grids", LATE, END, END + 1)
    assert grids.url == f"{srv.cobe_base_url}/2020-2029/sst202611.grb"
    assert "waiting for" in grids.line() and "(not due yet)" in grids.line()
    assert (index.name, index.state, index.newest, index.due) == ("Niño 3.4 index", STALE, END, END + 1)
    assert index.url == srv.index_url
    line = index.line()
    assert line.startswith("STALE   Niño 3.4 index: newest 2026-10, last complete month 2026-11")
    assert f"months up to 2026-11 are due, next file {srv.index_url}" in line and "ENSO_INDEX_URL" in line
    # 11 December: both are overdue; the grids' advice names the COBE settings.
    grids, index = input_freshness(engine, settings, utc(2026, 12, 11))
    assert grids.state == STALE and "ENSO_COBE_BASE_URL" in grids.line() and "ENSO_SST_SOURCE=ersst" in grids.line()
    # 2 November: everything the providers could have published is in.
    assert [f.state for f in input_freshness(engine, settings, utc(2026, 11, 2))] == [CURRENT, CURRENT]
    status = store_status(engine, settings=settings, now=utc(2026, 12, 11)).render()
    assert "Inputs (stale-input alarm):" in status and "STALE   cobe SST grids" in status
    assert "(cobe-sst v1)" in status


def test_the_alarm_judges_at_enso_stale_input_as_of_where_set(filled) -> None:
    """Without an explicit time the alarm takes ENSO_STALE_INPUT_AS_OF (tests, replays of past months)."""
    from db.status import alarm_time

    engine, settings, _ = filled
    assert settings.stale_input_as_of is None
    assert abs(alarm_time(settings) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    before = settings.model_copy(update={"stale_input_as_of": utc(2026, 11, 2)})
    after = settings.model_copy(update={"stale_input_as_of": utc(2026, 12, 11)})
    assert alarm_time(before) == utc(2026, 11, 2)
    assert [f.state for f in input_freshness(engine, before)] == [CURRENT, CURRENT]
    assert [f.state for f in input_freshness(engine, after)] == [STALE, STALE]
    assert check_inputs(engine, before, END) and "STALE   cobe SST grids" in store_status(engine, settings=after).render()
    with pytest.raises(StaleInputs):
        check_inputs(engine, after, END + 1)


def test_a_monthly_run_stops_at_once_on_a_stale_input_and_waits_on_a_late_one(filled) -> None:
    engine, settings, srv = filled
    with pytest.raises(StaleInputs) as caught:
        check_inputs(engine, settings, END + 1, utc(2026, 12, 9, 6))  # the index is stale, the grid merely late
    assert [f.name for f in caught.value.inputs] == ["Niño 3.4 index"]
    assert "stops now instead of waiting" in str(caught.value) and srv.index_url in str(caught.value)
    assert any(path.endswith("sst202611.grb") for path in srv.requests)  # it looked for the month first
    late = check_inputs(engine, settings, END + 1, utc(2026, 12, 5))
    assert [f.state for f in late] == [LATE, LATE]
    rerun = check_inputs(engine, settings, END, utc(2027, 3, 1))  # an old month whose data are all in
    assert [f.state for f in rerun] == [STALE, STALE]


def test_the_monthly_flow_checks_its_inputs_first(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import monthly

    engine, settings, srv = filled
    for key, value in {"ENSO_DATABASE_URL": settings.database_url, "ENSO_DATA_DIR": str(settings.data_dir),
                       "ENSO_HTTP_RETRIES": "0", **{f"ENSO_{k.upper()}": str(v)
                                                    for k, v in srv.settings_overrides().items()}}.items():
        monkeypatch.setenv(key, value)
    with engine.begin() as conn:  # the store stopped at 2026-07: the grids of 2026-10 were due on 10 November
        conn.execute(text("DELETE FROM sst_grid WHERE month > '2026-07-01'"))
    with pytest.raises(StaleInputs, match="STALE   cobe SST grids: newest 2026-07"):
        monthly.check_inputs_task.fn(Month.current() - 1)  # a month after 2026-10: never on this mirror
    source = Path(monthly.__file__).read_text()
    assert source.index("check_inputs_task(init)") < source.index("ingest_month_task(init)")


def test_a_stale_relative_index_is_reported_but_does_not_stop_the_run(tmp_path: Path) -> None:
    """CPC's relative file (RONI) defines only the observed phase: stale, it is in the alarm and the report's
    banner, but the monthly run goes on (the forecast does not need it)."""
    from db.ingest import ingest_relative
    from db.reporting import stale_inputs

    root = tmp_path / "mirror"
    manifest = write_mirror(root, START, END, seed=9, relative_index=True)
    assert manifest.relative_index_file is not None
    lines = manifest.relative_index_file.read_text().splitlines()
    manifest.relative_index_file.write_text("\n".join(lines[:3]) + "\n")  # CPC's file stopped at 2026-08
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    with MirrorServer(root) as srv, opened_engine(url) as engine:
        settings = Settings(database_url=url, data_dir=tmp_path / "var", http_retries=0, http_timeout=5,
                            **srv.settings_overrides())
        assert settings.relative_index_url == srv.relative_index_url
        assert backfill(engine, settings, "cobe", START, END, progress=False).complete
        assert ingest_index(engine, settings).ok
        assert [(r.source, r.outcome) for r in ingest_relative(engine, settings)] == [("relative", "stored")]
        now = utc(2026, 11, 20)  # October is in everywhere but in the relative file
        grids, index, relative = input_freshness(engine, settings, now)
        assert (grids.state, index.state) == (CURRENT, CURRENT)
        assert (relative.name, relative.state, relative.newest) == ("relative Niño 3.4 index", STALE,
                                                                    Month.of(2026, 8))
        assert relative.url == srv.relative_index_url and "ENSO_RELATIVE_INDEX_URL" in relative.line()
        inputs = check_inputs(engine, settings, END, now)  # does not raise
        assert [f.name for f in inputs if f.stale] == ["relative Niño 3.4 index"]
        assert [s.name for s in stale_inputs(engine, settings, "cobe", now)] == ["relative Niño 3.4 index"]


# ----------------------------------------------------------------------------- the report


def test_the_report_carries_a_banner_for_stale_inputs() -> None:
    data = example_report_data()
    assert "stale-inputs" not in render_report(data).html and "STALE" not in summary_text(data)
    stale = StaleInput("Niño 3.4 index", Month.of(2026, 6), Month.of(2026, 10),
                       "https://www.cpc.ncep.noaa.gov/data/indices/ersst5.nino.mth.91-20.ascii",
                       "set ENSO_INDEX_URL and ENSO_INDEX_FORMAT to the current file")
    data = dataclasses.replace(data, stale_inputs=(stale,))
    html = render_report(data).html
    assert 'id="stale-inputs"' in html and "Stale input data." in html
    assert "newest month held 2026-06, though months up to 2026-10 are due" in html
    assert "ersst5.nino.mth.91-20.ascii" in html
    text = summary_text(data)
    assert text.splitlines()[2].startswith("STALE INPUT: Niño 3.4 index: newest month held 2026-06")


def test_the_assembled_report_reports_the_stores_stale_inputs(copy_store: dict) -> None:
    from db.reporting import assemble_report

    with opened_engine(copy_store["url"]) as engine:
        settings = copy_store["settings"]
        now = assemble_report(engine, settings, Month.of(2020, 6), issued_at=utc(2020, 7, 20))
        assert now.stale_inputs == ()  # in July 2020 the June data were all there
        later = assemble_report(engine, settings, Month.of(2020, 6), issued_at=utc(2020, 9, 20))
        as_of = settings.model_copy(update={"stale_input_as_of": utc(2020, 7, 20)})
        assert assemble_report(engine, as_of, Month.of(2020, 6)).stale_inputs == ()  # issued now, judged then
    assert [(s.name, s.newest_month, s.overdue_month) for s in later.stale_inputs] == [
        ("cobe SST grids", Month.of(2020, 6), Month.of(2020, 8)),
        ("Niño 3.4 index", Month.of(2020, 6), Month.of(2020, 8)),
        ("relative Niño 3.4 index", Month.of(2020, 6), Month.of(2020, 8))]
    assert 'id="stale-inputs"' in render_report(later).html
    assert [s.name for s in later.sources] == [
        "JMA COBE-SST monthly SST grids (cobe-sst v1)",  # the product version used
        "Niño 3.4 monthly index (cpc-monthly, 1991-2020 base)",  # the base CPC's file name states
        "Relative Niño 3.4 monthly index (cpc-rnino34, 1991-2020 base)"]
