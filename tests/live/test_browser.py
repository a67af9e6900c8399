"""The live dashboard and the drill report in a real browser: Debian's Chromium, driven
headless through Playwright.

The dashboard is served by the lab's controller on loopback and fed by server-sent events;
it must load with no console error and no request off the machine, follow the observer's
count down and back up as prefixes are withdrawn and re-advertised through the API, and
colour a link by its session's state as the link goes down and comes back. A drill watched
on it leaves a screenshot mid-drill in its run directory; its report must open with no
console error and no request anywhere, every plot drawn, and no text that looks like a data
structure; its screenshot goes to the run directory too."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest

from controller.client import ApiClient
from tests.live.conftest import ROOT, _skip_or_fail, bgplab, reference_lab_up

pytestmark = pytest.mark.live

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser(live):
    path = chromium()
    if path is None:
        _skip_or_fail("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def lab(live) -> Iterator[str]:
    with reference_lab_up("w") as name:
        yield name


def watch(page) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return errors, requests


def observer(page) -> int | None:
    text = page.text_content("#observer-count")
    return int(text) if text and text.isdigit() else None


def test_the_dashboard_follows_withdrawals_and_a_link_going_down(browser, lab: str, tmp_path: Path, request) -> None:
    p = bgplab("dashboard", "--lab", lab)
    assert p.returncode == 0, p.stderr
    url = p.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "#lab=" in url and "token=" in url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        follow(page, url, lab, tmp_path, request)
    finally:
        page.close()  # a page left open streams on, and competes with the next test's drill


def follow(page, url: str, lab: str, tmp_path: Path, request) -> None:
    errors, requests = watch(page)
    page.goto(url)
    page.wait_for_function("document.getElementById('observer-count').textContent === '6500'", timeout=20_000)

    with ApiClient(lab) as api:
        # 300 BYOIP prefixes withdrawn through the API: the page's count falls within seconds
        out = api.set_advertised(False, byoip=True, count=300)["result"]
        t0 = time.monotonic()
        page.wait_for_function("Number(document.getElementById('observer-count').textContent) <= 6200", timeout=15_000)
        fell_s = time.monotonic() - t0
        page.wait_for_function("[...document.querySelectorAll('#impact td')].some(td => td.textContent === '300')",
                               timeout=10_000)
        page.screenshot(path=str(tmp_path / "dashboard-withdrawn.png"), full_page=True)
        api.set_advertised(True, ids=out["ids"])
        page.wait_for_function("document.getElementById('observer-count').textContent === '6500'", timeout=15_000)
    assert fell_s < 10

    # edge-fra's link to t1 down: its session leaves Established and the link turns; back up, it returns
    # (the fault through the CLI, as a user would: pyroute2's event loop and Playwright's do not share a thread)
    link = f"line[data-link='edge-fra|t1'], line[data-link='t1|edge-fra']"
    page.wait_for_function(f"document.querySelector(\"{link}\")?.dataset.state === 'Established'", timeout=15_000)
    assert bgplab("fault", "link-down", "--lab", lab, "t1", "edge-fra").returncode == 0
    try:
        page.wait_for_function(f"document.querySelector(\"{link}\").dataset.state !== 'Established'", timeout=20_000)
        page.screenshot(path=str(tmp_path / "dashboard-link-down.png"), full_page=True)
    finally:
        assert bgplab("fault", "link-up", "--lab", lab, "t1", "edge-fra").returncode == 0
    page.wait_for_function(f"document.querySelector(\"{link}\").dataset.state === 'Established'", timeout=60_000)
    assert page.get_attribute(link, "stroke") == "#2e7d32"

    assert errors == []
    off = [u for u in requests if urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert off == []
    say(request, f"dashboard screenshots: {tmp_path / 'dashboard-withdrawn.png'}, {tmp_path / 'dashboard-link-down.png'}")


def say(request, text: str) -> None:
    """A line in the test run's own output (CI's log), past pytest's capture."""
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(text)


def test_a_drill_watched_on_the_dashboard_and_its_report(browser, lab: str, tmp_path: Path, request) -> None:
    # On the lab whose edge-fra-t1 link the test above took down and up: the drill's probes must
    # end at its 0.95 there too. They ended at 0.70-0.79 in 3 of 6 runs while the link's return
    # left edge-fra without its default routes and its responder dead (fixed 2026-12-06).
    watched(browser, lab, tmp_path, request)


def watched(browser, lab: str, tmp_path: Path, request) -> None:
    url = bgplab("dashboard", "--lab", lab).stdout.strip()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # the drill's output to files, not pipes: nothing reads a pipe while the page is waited on
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        drill = None
        try:
            errors, requests = watch(page)
            page.goto(url)
            page.wait_for_function("document.getElementById('observer-count').textContent === '6500'", timeout=20_000)
            drill = subprocess.Popen([sys.executable, "-m", "controller.cli", "drill", "run",
                                      str(ROOT / "drills" / "withdraw-all-byoip.yaml"), "--lab", lab, "--dashboard",
                                      "--runs-dir", str(tmp_path)], cwd=ROOT, stdout=out, stderr=err, text=True)
            # mid-drill: the drill's clock on the page, every BYOIP prefix gone from the observer's graph
            page.wait_for_function("document.getElementById('drill-clock').textContent.startsWith('withdraw-all-byoip')",
                                   timeout=60_000)
            page.wait_for_function("Number(document.getElementById('observer-count').textContent) <= 2195", timeout=60_000)
            page.wait_for_timeout(1500)
            shot = page.screenshot(full_page=True)
            drill.wait(timeout=300)
        finally:
            if drill is not None and drill.poll() is None:
                drill.kill()
                drill.wait(timeout=30)
            page.close()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert drill.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "dashboard: http://127.0.0.1:" in stderr
    [run_dir] = tmp_path.iterdir()
    (run_dir / "dashboard-mid-drill.png").write_bytes(shot)
    assert errors == [] and [u for u in requests if urlparse(u).hostname not in ("127.0.0.1", "localhost")] == []

    report = browser.new_page(viewport={"width": 1300, "height": 1000})
    try:
        read_report(report, run_dir, request)
    finally:
        report.close()


def read_report(report, run_dir: Path, request) -> None:
    errors, requests = watch(report)
    report.goto((run_dir / "report.html").as_uri())
    report.wait_for_function("document.querySelectorAll('.plot svg.main-svg').length > 0", timeout=20_000)
    report.wait_for_timeout(1000)
    drawn = report.eval_on_selector_all(".plot", """els => els.map(e => {
        const svg = e.querySelector('svg.main-svg'); const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
        return [e.dataset.figure, r.width, r.height, e.querySelectorAll('.scatterlayer path, .barlayer path').length]; })""")
    assert len(drawn) >= 4 and all(w > 300 and h > 150 and marks > 0 for _, w, h, marks in drawn), drawn
    text = report.inner_text("body")
    assert not re.search(r"\{'|\{\"|\[\{|': |\": ", text), re.search(r".{40}(\{'|\{\"|\[\{|': |\": ).{40}", text)
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == []  # nothing from any network address
    report.screenshot(path=str(run_dir / "report.png"), full_page=True)
    say(request, f"screenshots: {run_dir / 'dashboard-mid-drill.png'}, {run_dir / 'report.png'}")
