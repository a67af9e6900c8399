"""A drill's grade as a JUnit XML file, for a team's CI: one test case per expectation.

The format is Apache Ant's JUnit report (``<testsuites>`` of ``<testsuite>``: properties,
test cases, system-out, system-err), the one CI systems read (Jenkins, GitLab, GitHub's
test reporters). A failed expectation is a ``<failure>`` with the figure, its range and
where the figure comes from; a drill that did not complete is an ``<error>`` case. The
report's path is in system-out, in the ``[[ATTACHMENT|path]]`` form Jenkins attaches.
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from controller.drills.expect import failed

FIGURES_AS_PROPERTIES = ("withdrawn_in_network", "withdrawn_not_asked", "bindings_removed", "accounts_affected",
                         "accounts_unbound", "api_denied", "api_unauthorized", "refused_requests", "automation_failed_runs", "observer_min", "held_changes",
                         "breaker_trips")


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {x}" for k, x in sorted(v.items()))
    if isinstance(v, list):
        return "; ".join(map(str, v))
    return str(v)


def write_junit(path: Path | str, drill: str, checks: list[dict[str, Any]], *, error: str | None = None,
                run_dir: Path | None = None, metrics: dict[str, Any] | None = None, seconds: float = 0.0) -> Path:
    """Write the grade to ``path``; its directory is made if missing. ``seconds``: the whole
    run, lab up to report, wall clock."""
    path = Path(path)
    failures = len(failed(checks))
    skipped = sum(1 for c in checks if c["ok"] is None)
    errors = 1 if error else 0
    run = (metrics or {}).get("run", {})
    cls = f"bgplab.drill.{drill}"
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {
        "name": cls, "package": "bgplab.drill", "id": "0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "hostname": socket.gethostname() or "localhost",
        "tests": str(len(checks) + errors), "failures": str(failures), "errors": str(errors), "skipped": str(skipped), "time": f"{float(seconds):.3f}",
    })
    props = ET.SubElement(suite, "properties")
    if run_dir is not None:
        ET.SubElement(props, "property", {"name": "run_dir", "value": str(run_dir)})
        ET.SubElement(props, "property", {"name": "report", "value": str(Path(run_dir) / "report.html")})
    if run.get("outcome"):
        ET.SubElement(props, "property", {"name": "outcome", "value": str(run["outcome"])})
    figures = (metrics or {}).get("figures", {})
    for key in FIGURES_AS_PROPERTIES:
        f = figures.get(key)
        if f is not None:
            ET.SubElement(props, "property", {"name": f"{key} ({f['source']})", "value": _value(f["value"])})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"name": c["expectation"], "classname": cls, "time": "0"})
        if c["ok"] is None:  # reported, not graded (the drill says why)
            ET.SubElement(case, "skipped", {"message": f"{c['expectation']} = {c['value']}: {c.get('note', 'not held')}"})
        elif not c["ok"]:
            n = f", n={c['n']}" if c.get("n") is not None else ""
            f = ET.SubElement(case, "failure", {
                "message": f"{c['expectation']} = {c['value']}, expected {c['range']}",
                "type": "expectation"})
            f.text = (f"{c['expectation']}: {c['value']} (expected {c['range']}{n}); measured from: "
                      f"{c.get('source') or 'unknown'}" + (f"; {c['note']}" if c.get("note") else ""))
    if error:
        case = ET.SubElement(suite, "testcase", {"name": "drill completed", "classname": cls, "time": "0"})
        e = ET.SubElement(case, "error", {"message": error[:500], "type": "drill"})
        e.text = error
    out = ET.SubElement(suite, "system-out")
    if run_dir is not None:
        report = Path(run_dir).resolve() / "report.html"
        out.text = f"report: {report}\n[[ATTACHMENT|{report}]]\n"
    err = ET.SubElement(suite, "system-err")
    tails = [r for r in (metrics or {}).get("figures", {}).get("automation_runs", {}).get("value", []) or []
             if r.get("stderr_tail")]
    err.text = "".join(f"--- {r['task']} run {r['run']} (exit {r['exit_code']}"
                       f"{', killed at its limit' if r.get('killed_at_limit') else ''}) stderr:\n{r['stderr_tail']}\n"
                       for r in tails)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
