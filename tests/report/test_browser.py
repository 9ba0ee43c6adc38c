"""report.html in a real browser: headless Chromium driven by Selenium.

Needs the `selenium` package (the dev extra) and Chromium with its driver (Debian: apt-get
install chromium chromium-driver; .ci/run installs them); skips without them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wavesr.report import fmt

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver",)
WAIT_S = 20

ALL_LOADED = "return Array.from(document.images).every(i => i.complete)"
BROKEN = (
    "return Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
    ".map(i => i.alt || i.src.slice(0, 60))"
)
STATE = """
const v = document.getElementById(arguments[0]);
const imgs = Array.from(v.querySelectorAll('.panels img'));
return {
  index: Number(v.dataset.index),
  label: v.querySelector('.label').textContent,
  titles: Array.from(v.querySelectorAll('.panel .title')).map(t => t.textContent),
  srcs: imgs.map(i => i.src),
  transforms: imgs.map(i => i.style.transform),
  filters: imgs.map(i => i.style.filter),
};
"""
TABLE = """
return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr')).map(
  r => Array.from(r.cells).map(c => [c.textContent, c.dataset.value === undefined ? null :
                                     Number(c.dataset.value)]));
"""


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    binary, driver = _which(BROWSERS), _which(DRIVERS)
    if binary is None or driver is None:
        pytest.skip(
            "no Chromium and chromedriver on this machine, so report.html is not tested in a "
            "browser (Debian: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(WAIT_S)
    yield chrome
    chrome.quit()


def open_page(browser, path: Path) -> None:
    """Load `path` from disk; fail on script errors (CSP violations included) or broken images."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(ALL_LOADED))
    assert_clean(browser)


def assert_clean(browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(ALL_LOADED))
    assert browser.execute_script(BROKEN) == []
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def state(browser, viewer: str) -> dict:
    return browser.execute_script(STATE, viewer)


def press(browser, key: str, times: int = 1) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for _ in range(times):
        ActionChains(browser).send_keys(key).perform()


def frame_count(browser, viewer: str) -> int:
    data = json.loads(browser.find_element("id", "viewer-data").get_attribute("textContent"))
    return next(len(v["frames"]) for v in data["viewers"] if f"viewer-{v['key']}" == viewer)


# ----------------------------------------------------------------------------- evaluate


def test_arrow_keys_show_every_slice(browser, eval_report: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, eval_report / "report.html")
    n = frame_count(browser, "viewer-eval")
    assert n == 8
    seen = []
    for i in range(n):
        s = state(browser, "viewer-eval")
        assert s["index"] == i and s["label"].startswith(f"{i + 1} / {n}: ")
        assert s["titles"] == ["LR (nearest)", "bicubic", "HR", "|bicubic − HR|"]
        assert_clean(browser)  # this slice's images all decoded
        seen.append(s["srcs"])
        press(browser, Keys.ARROW_RIGHT)
    assert state(browser, "viewer-eval")["index"] == n - 1  # stops at the last slice
    assert len({tuple(srcs) for srcs in seen}) == n  # every slice shows other images
    press(browser, Keys.ARROW_LEFT, 2)
    assert state(browser, "viewer-eval")["index"] == n - 3


def test_slider_moves_the_slices(browser, eval_report: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, eval_report / "report.html")
    slider = browser.find_element("css selector", "#viewer-eval .slider")
    first = state(browser, "viewer-eval")
    slider.send_keys(Keys.END)
    last = state(browser, "viewer-eval")
    assert last["index"] == 7 and last["srcs"] != first["srcs"]
    slider.send_keys(Keys.HOME)
    assert state(browser, "viewer-eval")["srcs"] == first["srcs"]
    slider.send_keys(Keys.ARROW_RIGHT)  # the slider's own key handling, not the page's too
    assert state(browser, "viewer-eval")["index"] == 1
    assert_clean(browser)


def test_zoom_and_pan_are_shared_by_all_panels(browser, eval_report: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    open_page(browser, eval_report / "report.html")
    view = browser.find_elements("css selector", "#viewer-eval .panel .view")[2]  # HR
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", view)
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(view), 0, -400).perform()
    zoomed = state(browser, "viewer-eval")["transforms"]
    assert len(set(zoomed)) == 1 and "scale(1)" not in zoomed[0]
    scale = float(zoomed[0].split("scale(")[1].rstrip(")"))
    assert scale > 1.5
    ActionChains(browser).click_and_hold(view).move_by_offset(30, 20).release().perform()
    panned = state(browser, "viewer-eval")["transforms"]
    assert len(set(panned)) == 1 and panned != zoomed
    ActionChains(browser).double_click(view).perform()
    assert set(state(browser, "viewer-eval")["transforms"]) == {"translate(0px, 0px) scale(1)"}


def test_map_gain_brightens_only_the_error_maps(browser, eval_report: Path) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, eval_report / "report.html")
    Select(browser.find_element("css selector", "#viewer-eval .gain")).select_by_value("8")
    s = state(browser, "viewer-eval")
    assert s["filters"] == ["", "", "", "brightness(8)"]


def test_tables_show_the_metrics(browser, eval_report: Path) -> None:
    open_page(browser, eval_report / "report.html")
    m = json.loads((eval_report / "metrics.json").read_text())["methods"]["bicubic"]
    (row,) = browser.execute_script(TABLE, "table-quality")
    assert row[0][0] == "bicubic"
    assert row[4] == [fmt(m["psnr"]), m["psnr"]] and row[5] == [fmt(m["ssim"], 4), m["ssim"]]
    (bands,) = browser.execute_script(TABLE, "table-bands")
    assert [c[1] for c in bands[1:]] == m["band_psnr"]
    (energy,) = browser.execute_script(TABLE, "table-energy")
    assert [c[0] for c in energy[1:]] == [fmt(v) for v in m["band_energy_ratio"]]


# ----------------------------------------------------------------------------- benchmark, sr


def test_benchmark_page_shows_figures_and_slices(browser, bench_report: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, bench_report / "report.html")
    figures = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure > img')).map(i => i.naturalWidth)"
    )
    assert len(figures) == 2 and min(figures) > 100
    press(browser, Keys.ARROW_RIGHT)
    assert state(browser, "viewer-eval")["index"] == 1
    assert_clean(browser)


def test_sr_page_keys_move_the_viewer_under_the_mouse(browser, sr_report: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(browser, sr_report)
    keys = ["viewer-slices", "viewer-reformat-1", "viewer-reformat-2"]
    assert [frame_count(browser, k) for k in keys] == [4, 12, 10]
    press(browser, Keys.ARROW_RIGHT)
    assert [state(browser, k)["index"] for k in keys] == [1, 0, 0]
    coronal = browser.find_element("id", "viewer-reformat-2")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", coronal)
    ActionChains(browser).move_to_element(coronal).perform()
    press(browser, Keys.ARROW_RIGHT, 3)
    assert [state(browser, k)["index"] for k in keys] == [1, 0, 3]
    assert state(browser, "viewer-reformat-2")["titles"] == ["input 4x12", "output 4x48"]
    assert_clean(browser)
