"""The dashboard: one self-contained page that a real headless Chromium opens with no
console error and no request beyond the file, every chart and table present.

Chromium is Debian's (``.ci/run`` installs it), driven by Playwright with
``executable_path`` (no browser download). The screenshot goes to the test's tmp dir; with
``ESCALATE_UPDATE_SCREENSHOT=1`` a copy also goes to ``docs/images/dashboard.png``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from escalate.cli import main
from escalate.demo import run_demo
from escalate.store import Store
from escalate.store._dashboard import SECTIONS, _timeline, render_dashboard
from escalate.store._query import Filters

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"
CHARTS = ("chart-funnel", "chart-rate", "chart-quality", "chart-cost", "chart-savings")
TABLES = (
    "table-funnel",
    "table-quality",
    "table-cost",
    "table-savings",
    "table-reasons",
    "table-gates",
    "table-calibration",
)


@pytest.fixture
def demo_store(tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    run_demo(40, out=io.StringIO(), verbose=False, store=url)
    return Store(url)


def _browser() -> Any:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"chromium is required under CI and is missing ({CHROMIUM})")
        pytest.skip("no chromium: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api.sync_playwright()


def test_the_page_is_self_contained(demo_store: Store) -> None:
    html = render_dashboard(demo_store)
    # No script, stylesheet, image or font from anywhere: the only URL is SVG's namespace.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert "<script" not in html and "@import" not in html and "url(" not in html
    for name in (*SECTIONS, *CHARTS, *TABLES):
        assert f'id="{name}"' in html
    assert "Estimate:" in html


def test_a_real_browser_shows_every_chart_and_table(demo_store: Store, tmp_path: Path) -> None:
    page_file = tmp_path / "dashboard.html"
    assert main(["dashboard", "--store", demo_store.url, "--out", str(page_file)]) == 0
    errors: list[str] = []
    requests: list[str] = []
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            for name in (*SECTIONS, *CHARTS, *TABLES):
                element = page.locator(f"#{name}")
                assert element.count() == 1, name
                assert element.is_visible(), name
                box = element.bounding_box()
                assert box is not None and box["width"] > 50 and box["height"] > 10, name
            rows = page.locator("#table-cost tbody tr").count()
            assert rows == 2  # mixtral, mixtral>gpt-4
            # One dot per period of the timeline: how many periods a fast demo run spans
            # depends on the machine's speed, so count them from the store itself.
            periods = len(_timeline(demo_store, Filters()))
            assert periods >= 1 and page.locator("#chart-rate .dot").count() == periods
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [page_file.as_uri()]
    assert shot.stat().st_size > 20_000
    if os.environ.get("ESCALATE_UPDATE_SCREENSHOT"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
