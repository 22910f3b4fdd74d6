"""The dashboard: one self-contained page that a real headless Chromium opens with no
console error and no request beyond the file, every chart and table present; the audits'
false passes and the adaptive starts, from receipts made through the real path over SQLite
and PostgreSQL, with their figures, and only when there are such receipts.

Chromium is Debian's (``.ci/run`` installs it), driven by Playwright with
``executable_path`` (no browser download). The screenshot goes to the test's tmp dir; with
``ESCALATE_UPDATE_SCREENSHOT=1`` a copy also goes to ``docs/images/dashboard.png``.
"""

from __future__ import annotations

import io
import os
import random
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import escalate
from escalate import AdaptiveStart, Audit
from escalate.cli import main
from escalate.demo import run_demo
from escalate.store import Store, build_report
from escalate.store._dashboard import SECTIONS, _timeline, render_dashboard
from escalate.store._dashboard_learning import LEARNING_SECTIONS
from escalate.store._query import Filters
from escalate.testing._server import ProviderServer
from tests.store.test_audits import ten_audited_calls, tiers
from tests.store.test_store import make_solver

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


_UNTRACKED = ("td", "th", "tr", "thead", "tbody", "meta", "rect", "line")
"""Tags not kept on the open-element stack: void ones, and table cells (read apart)."""


class _Page(HTMLParser):
    """The page's section ids, its tables' cells by table id, its texts by element id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self.intervals: dict[str, int] = {}
        self._open: list[str | None] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._chart: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        element_id = a.get("id")
        if element_id:
            self.ids.append(element_id)
        if tag not in _UNTRACKED:
            self._open.append(element_id)
        if tag == "table" and element_id:
            self._table = element_id
            self.tables[element_id] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "svg":
            self._chart = element_id
        elif tag == "g" and a.get("class") == "interval" and self._chart:
            self.intervals[self._chart] = self.intervals.get(self._chart, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        if tag not in _UNTRACKED and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for element_id in self._open:
            if element_id:
                self.texts[element_id] = self.texts.get(element_id, "") + data

    def rows(self, table_id: str) -> list[list[str]]:
        return [row for row in self.tables[table_id] if row]


def test_the_audits_false_passes_with_their_intervals_and_cost(
    build: Any,
    server: ProviderServer,
    openai_tier: Any,
    store_url: str,
    use_store: Callable[..., None],
) -> None:
    use_store(store_url)
    # 6 audits agree, 3 disagree, 1 fails (no verdict)
    receipts = ten_audited_calls(build, server, openai_tier)
    assert escalate.flush(timeout=30)
    store = Store(store_url)
    cost = build_report(store).audits.known_cost_usd
    assert cost == sum(
        (x.cost_usd or 0 for r in receipts for x in r.attempts if x.purpose == "audit"), 0
    )
    assert cost > 0

    page = _Page(render_dashboard(store))

    assert "audits" in page.ids and "adaptive-starts" not in page.ids
    cheap = tiers(openai_tier)[0].display_name
    assert page.rows("table-audits") == [
        ["tier", cheap, "3 of 9", "33.3%", "12.1%-64.6%", "1"],  # Wilson, 3 of 9
        ["gate", "min_length(customer)", "3 of 9", "33.3%", "12.1%-64.6%", "1"],
    ]
    assert page.intervals["chart-audits"] == 2  # one error bar a row
    note = page.texts["audits-cost"]
    assert "10 audit(s)" in note and "6 agreed, 3 disagreed, 1 without a verdict" in note
    assert f"${cost:.6f}" in note and f"${cost / 10:.6f} per audit" in note


def _adaptive_store(store_url: str, use_store: Callable[..., None], *, task: Any) -> str:
    """Receipts of an adaptive function through the real path: 40 hard and 40 easy
    questions (the cheap tier fails the hard ones), then a plain function's call."""
    use_store(store_url)
    solve = make_solver(
        "routed",
        task=task,
        adaptive=AdaptiveStart(
            min_observations=10,
            explore=0.2,
            random=random.Random(5).random,
            seed_from_store=False,
        ),
    )
    for i in range(40):
        solve(f"hard question {i}")
        solve(f"easy question {i}")
    make_solver("plain")("easy")
    assert escalate.flush(30)
    return store_url


def test_the_adaptive_starts_with_their_shares_and_cheap_pass_rate(
    store_url: str, use_store: Callable[..., None]
) -> None:
    store = Store(_adaptive_store(store_url, use_store, task=lambda q: q.split()[0]))
    report = build_report(store)
    page = _Page(render_dashboard(store))

    assert "adaptive-starts" in page.ids and "audits" not in page.ids
    rows = {row[1]: row for row in page.rows("table-adaptive")}
    assert set(rows) == {"hard", "easy"}  # the plain function is not adaptive
    for figure in report.adaptive:
        row = rows[figure.task or ""]
        assert row[0] == figure.function and row[2:4] == ["40", "40"]
        shares = ", ".join(f"{t} {figure.starts[t] / 40:.1%}" for t in figure.starts)
        assert row[4] == shares and row[5] == str(figure.explored) and row[6] == "cheap"
        assert row[7] == f"{figure.passes} of {figure.passes + figure.fails}"
        assert figure.pass_rate is not None and figure.low is not None and figure.high
        assert row[8] == f"{figure.pass_rate:.1%}"
        assert row[9] == f"{figure.low:.1%}-{figure.high:.1%}"
    assert rows["easy"][4] == "cheap 100.0%" and rows["easy"][7] == "40 of 40"
    assert rows["hard"][7].startswith("0 of ")  # the cheap tier fails every hard one
    assert page.intervals["chart-adaptive"] == 2


def test_a_page_without_audits_or_adaptive_starts_has_neither_section(
    store_url: str, use_store: Callable[..., None], demo_store: Store
) -> None:
    use_store(store_url)
    solve = make_solver("plain")
    solve("easy")
    solve("hard")
    assert escalate.flush(30)
    for store in (Store(store_url), demo_store):
        html = render_dashboard(store)
        page = _Page(html)
        assert set(SECTIONS) <= set(page.ids)
        assert not set(LEARNING_SECTIONS) & set(page.ids)
        assert "Audits: false passes" not in html and "Adaptive starts" not in html


def test_a_real_browser_shows_the_audits_and_adaptive_starts(
    tmp_path: Path, use_store: Callable[..., None]
) -> None:
    # A user's task name that is markup: escaped, it is text (no image is requested).
    url = f"sqlite:///{tmp_path / 'learning.db'}"
    use_store(url)
    solve = make_solver(
        "audited",
        task='<img src="x.png">&',
        adaptive=AdaptiveStart(min_observations=10, explore=0, seed_from_store=False),
        audit=Audit(share=1.0, key="n"),
    )
    for i in range(12):
        solve(f"easy question {i}")
    assert escalate.flush(30)
    page_file = tmp_path / "dashboard.html"
    assert main(["dashboard", "--store", url, "--out", str(page_file)]) == 0
    assert "&lt;img src=&quot;x.png&quot;&gt;&amp;" in page_file.read_text()
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
            for name in (*LEARNING_SECTIONS, "chart-audits", "table-audits", "chart-adaptive"):
                element = page.locator(f"#{name}")
                assert element.count() == 1 and element.is_visible(), name
                box = element.bounding_box()
                assert box is not None and box["width"] > 50 and box["height"] > 10, name
            cells = page.locator("#table-adaptive tbody tr").first.locator("td")
            assert cells.nth(1).inner_text() == '<img src="x.png">&'
            assert page.locator("#table-audits tbody tr").count() == 1  # the cheap tier
        finally:
            browser.close()
    assert errors == []
    assert requests == [page_file.as_uri()]
