"""Analysis and report against a run directory the lab itself recorded (tests/fixtures/run-mini,
the mini replay on a live lab; `make fixture-run` records it again)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from controller.drills import write_report
from controller.drills.analysis import analyse
from controller.drills.stats import SOURCES
from controller.drills.rundir import RunDir, RunDirError, read_jsonl

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-mini"


@pytest.fixture
def rd(tmp_path: Path) -> RunDir:
    shutil.copytree(FIXTURE, tmp_path / "run")
    return RunDir(tmp_path / "run")


@pytest.fixture(scope="module")
def analysis():
    return analyse(RunDir(FIXTURE))


def test_every_figure_says_where_it_comes_from(analysis) -> None:
    F = analysis.figures
    assert F and all(f["source"] in SOURCES and f["basis"] for f in F.values())
    assert F["byoip"]["source"] == "input" and F["withdrawn_by_task"]["source"] == "controller"
    for measured in ("observer_min", "withdrawn_on_wire", "duration_s", "convergence_s", "path_hunting", "probe_failures"):
        assert F[measured]["source"] == "network", measured
    assert F["duration_s"]["clock"] == "lab" and F["duration_incident_s"]["clock"] == "incident"


def test_withdrawals_are_located_on_the_speakers_wire(analysis) -> None:
    F = analysis.figures
    n = F["withdrawn_by_task"]["value"]
    assert n > 0 and F["withdrawn_on_wire"]["value"] == n
    assert F["withdrawn_on_wire"]["by_basis"] == {"wire": n, "collector": 0}
    delay = F["api_to_wire_s"]["value"]
    assert delay["n"] == n and 0 < delay["median"] < 1.0
    for r in analysis.results:
        assert r.withdrawn_at >= r.controller_at  # the wire never leads the call that caused it


def test_restored_counts_say_asked_and_back_separately(analysis) -> None:
    F = analysis.figures
    asked = sum(F[f"restored_by_{how}"]["value"] for how in ("dashboard", "revert", "config_push"))
    assert asked == F["withdrawn_by_task"]["value"]  # every affected prefix was asked back once
    assert F["restored_in_network"]["value"] == asked and F["not_recovered"]["value"] == 0
    assert F["restored_by_revert_in_network"]["source"] == "network"


def test_the_duration_is_measured_not_read_off_the_timeline(analysis) -> None:
    F = analysis.figures
    st = analysis.record.state
    last_step = max(m["incident"] for m in st.marks)
    # from the first withdrawal on the wire to the last prefix back everywhere with probes ok
    first = min(r.withdrawn_at for r in analysis.results)
    last = max(r.recovered_at(len(analysis.record.lab.vantage_points)) for r in analysis.results)
    assert F["duration_s"]["value"] == round(last - first, 3)
    assert F["duration_incident_s"]["value"] != last_step
    # the config push (18:22, 34 incident minutes in) ends it, not the closing mark (18:28)
    assert abs(F["duration_incident_s"]["value"] + F["first_withdrawal_incident_s"]["value"] - 34 * 60) < 60


@pytest.mark.parametrize("move", ["remove", "later"])
def test_moving_or_removing_the_closing_mark_keeps_the_duration(rd: RunDir, analysis, move: str) -> None:
    record = rd.record()
    marks = [m for m in record.state.marks if m["label"] != "over"]
    assert len(marks) == len(record.state.marks) - 1
    if move == "later":
        marks.append({"t": record.state.t0 + 3600, "incident": 3 * 3600 * 60, "label": "over"})
    record.state.marks = marks
    rd.write_record(record)
    drill = json.loads(rd.drill.read_text())
    drill["steps"] = [s for s in drill["steps"] if s["do"] != "mark"]
    rd.drill.write_text(json.dumps(drill))
    assert analyse(rd).figures["duration_s"] == analysis.figures["duration_s"]


def test_report_shows_sources_and_no_blanket_claim(rd: RunDir) -> None:
    metrics, page = write_report(rd, [])
    html = page.read_text()
    assert "All figures below were measured" not in html
    # interactive plots: plotly.js embedded (the page opens offline), one spec per figure
    assert "Plotly.newPlot" in html and "plotly.js" in html.lower() and 'src="http' not in html
    figures = json.loads(html.split("const FIGURES = ", 1)[1].split(";\n", 1)[0])
    assert {"observer", "impact", "probes", "hunting", "convergence"} <= set(figures)
    assert html.count('class="plot"') == len(figures)
    assert "<h2>What happened</h2>" in html and "The operators stopped the task at 17:59:20" in html
    assert "(and 35 more that behaved the same)" in html  # the longest hunters, grouped
    assert "<th>source</th>" in html and "network: " in html and "input: " in html
    assert "did not complete" not in html
    page = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    for raw in ("{'", '{"', "[{", "': "):  # no Python or JSON structure anywhere in the page's text
        assert raw not in page, raw
    assert json.loads(rd.metrics.read_text())["figures"] == metrics["figures"]


def test_report_of_an_interrupted_run_says_so(rd: RunDir) -> None:
    record = rd.record()
    record.outcome, record.error = "interrupted", "drill interrupted by SIGTERM"
    rd.write_record(record)
    metrics, page = write_report(rd, [])
    assert metrics["run"]["outcome"] == "interrupted"
    assert "did not complete: interrupted" in page.read_text()


def test_a_directory_without_a_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no lab.json"):
        analyse(RunDir(tmp_path))


def test_jsonl_tolerates_only_a_cut_last_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a"')
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]
    p.write_text('{"a": 1}\n{"a\n{"a": 3}\n')
    with pytest.raises(RunDirError, match="x.jsonl:2"):
        read_jsonl(p)


def test_a_sampler_that_fails_keeps_its_error_for_the_runner(tmp_path: Path) -> None:
    import httpx

    from controller.client import ApiClient
    from controller.drills.live import Sampler
    from lab.errors import BgplabError

    # an API that does not answer (nothing listens on the discard port of loopback)
    with ApiClient("gone", http=httpx.Client(base_url="http://127.0.0.1:9", timeout=2)) as api:
        s = Sampler(api, RunDir(tmp_path), {}, lambda: 0.0)
        s.start()
        s.join(timeout=10)
    assert isinstance(s.error, BgplabError) and "did not answer" in str(s.error)


def test_every_expectation_names_a_figure_the_analysis_makes(analysis) -> None:
    from controller.drills.analysis import EXPECTATIONS
    from controller.drills.grading import AUTOMATION_FIGURES

    # the recorded run is the replay's; an automation's figures come with exec tasks (test_automation)
    assert {fig for fig, _, _ in EXPECTATIONS.values()} <= set(analysis.figures) | set(AUTOMATION_FIGURES)


def test_drill_compare_sets_runs_side_by_side_with_each_figures_source(rd, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from controller.cli import cli
    from controller.drills import write_report
    from controller.drills.compare import ROWS, compare

    write_report(rd)
    other = tmp_path / "other"
    shutil.copytree(rd.path, other)
    t = compare([rd.path, other])
    assert len(t["columns"]) == 2 and [r["figure"] for r in t["rows"]] == [label for label, _, _ in ROWS]
    assert all(r["source"] in SOURCES for r in t["rows"])
    metrics = json.loads(rd.metrics.read_text())["figures"]
    row = next(r for r in t["rows"] if r["figure"] == "prefixes withdrawn by the task")
    assert row["values"] == [metrics["withdrawn_by_task"]["value"]] * 2  # read, not recomputed
    out = tmp_path / "compare.html"
    r = CliRunner().invoke(cli, ["drill", "compare", str(rd.path), str(other), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| prefixes withdrawn by the task | controller |" in r.output and "<table>" in out.read_text()
    bad = CliRunner().invoke(cli, ["drill", "compare", str(tmp_path)])
    assert bad.exit_code != 0 and "not a reported drill run" in bad.output


def test_a_calibrated_figure_is_set_to_match_and_only_emergent_ones_are_compared(rd: RunDir) -> None:
    from controller.drills.beside import lab_vs_incident

    drill = json.loads(rd.drill.read_text())
    drill["calibration"] = {
        "withdrawn_by_task": {"knobs": ["tasks.cleanup.batch"], "derived_from": "1,100 withdrawn 17:56-18:46"},
        "withdrawn_on_wire": {"knobs": ["tasks.cleanup.batch"], "derived_from": "1,100 withdrawn 17:56-18:46"}}
    rd.drill.write_text(json.dumps(drill))
    a = analyse(rd)
    F = a.figures
    # a controller count the knob fixes is no result; the network's measure of it stays one, marked
    assert F["withdrawn_by_task"]["source"] == "calibrated" and F["withdrawn_by_task"]["calibrated_by"] == ["tasks.cleanup.batch"]
    assert F["withdrawn_on_wire"]["source"] == "network" and F["withdrawn_on_wire"]["calibrated_by"]
    rows = {r[0]: r for r in lab_vs_incident(a)}
    assert rows["withdrawn"][4].startswith("set to match, not agreement: tasks.cleanup.batch derived from 1,100")
    assert rows["restored by the revert"][4] == "emergent"  # not calibrated in this drill file
    cust = rows["customers affected"]
    assert "no incident figure" in cust[3] and "25% of BYOIP prefixes" in cust[3]
    assert all(len(r) == 5 for r in rows.values())
    html = write_report(rd)[1].read_text()
    assert "set to match, not agreement" in html and "customers affected" in html
