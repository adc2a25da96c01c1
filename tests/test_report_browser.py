"""The report in a real headless Chromium: it loads nothing from anywhere, draws its charts, and shows
hostile stored strings as text.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the Playwright Python package; one
browser is launched for this module, and closed (Playwright stopped) when it ends.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from reports.data import ReportData, example_report_data
from reports.render import RenderedReport, render_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
HOSTILE_VERSION = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(2)//\"><script>alert(3)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module scope, not session: while Playwright's sync API is open its event loop counts as running in this
    thread, so Prefect's sync/async methods (``Flow.from_source``, ``State.result``...) would return coroutines
    in every later test module."""
    assert CHROMIUM.exists(), "the browser test needs Chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: Browser, path: Path) -> dict[str, object]:
    """Load the file; return every request, dialog and console error, the page text, images and a screenshot."""
    page = browser.new_page(viewport={"width": 960, "height": 1000})
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    result = {
        "requests": requests,
        "dialogs": dialogs,
        "text": page.inner_text("body"),
        "scripts": page.evaluate("document.scripts.length"),
        "images": page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"),
        "screenshot": page.screenshot(full_page=True, type="png"),
    }
    page.close()
    return result


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderedReport, Path]:
    data = example_report_data(model_version=HOSTILE_VERSION, index_url=HOSTILE_URL)
    rendered = render_report(data)
    path = tmp_path_factory.mktemp("report") / rendered.file_name
    path.write_text(rendered.html, encoding="utf-8")
    return rendered, path


@pytest.fixture(scope="module")
def seen(browser: Browser, hostile_report) -> dict[str, object]:
    return _open(browser, hostile_report[1])


def test_report_loads_nothing_but_itself(seen, hostile_report) -> None:
    _, path = hostile_report
    outside = [url for url in seen["requests"] if url != path.as_uri() and not url.startswith("data:")]
    assert outside == []
    assert path.as_uri() in seen["requests"]


def test_report_draws_its_charts_and_is_not_blank(seen, hostile_report, tmp_path: Path) -> None:
    rendered, _ = hostile_report
    assert set(rendered.images) == {"history.png", "plume.png", "map_observed.png", "map_predicted.png",
                                    "skill_by_lead.png", "skill_heatmap.png", "reliability.png",
                                    "seasonal_outlook.png"}
    assert len(seen["images"]) == len(rendered.images)
    assert all(complete and width > 0 and height > 0 for complete, width, height in seen["images"])
    shot = Image.open(io.BytesIO(seen["screenshot"])).convert("L")
    pixels = np.asarray(shot, dtype=np.float64)
    assert shot.height > 3000, "a full report is several screens long"
    assert pixels.std() > 20, "the screenshot looks blank"
    (tmp_path / "report.png").write_bytes(seen["screenshot"])


def test_hostile_strings_show_as_text(seen) -> None:
    assert seen["dialogs"] == []
    assert seen["scripts"] == 0
    assert HOSTILE_VERSION in seen["text"]
    assert HOSTILE_URL in seen["text"]


@pytest.mark.parametrize("case", ["first_month", "index_settled"])
def test_report_variants_render(browser: Browser, tmp_path: Path, case: str) -> None:
    """A first month (no verification history) and a month whose newest index value has its ONI."""
    data: ReportData = example_report_data(with_history=case != "first_month")
    if case == "index_settled":
        data = replace(data, current=replace(data.current, oni_month=data.current.anomaly_month,
                                             roni_month=data.current.anomaly_month), provisional=())
    rendered = render_report(data)
    path = tmp_path / rendered.file_name
    path.write_text(rendered.html, encoding="utf-8")
    seen = _open(browser, path)
    assert [u for u in seen["requests"] if u != path.as_uri() and not u.startswith("data:")] == []
    assert all(width > 0 for _, width, _ in seen["images"]) and len(seen["images"]) == len(rendered.images)
    if case == "first_month":
        assert "No verified forecasts yet" in seen["text"]
        assert "Provisional values" in seen["text"]
    else:
        assert "Provisional values" not in seen["text"]
        assert "Verification" in seen["text"] and "No verified forecasts yet" not in seen["text"]
