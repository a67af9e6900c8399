"""A drill's run directory: the one definition of its files and of its record.

The runner writes it; analysis and the report read it. Neither side guesses a file
by glob: every name is a property here, and the record (``lab.json``) says which
node was the collector, which routers were vantage points, and which link
addresses the speakers sent from.

Times in the record are lab time (UNIX seconds, ``time.time()``); incident-clock
offsets are derived from them with the run's ``t0`` and ``speed``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.drills.clock import DrillClock, Window
from lab.errors import BgplabError

# How a run ended: the runner sets it, the report shows it, the CLI maps it to an exit code.
OUTCOMES = ("completed", "interrupted", "overrun", "failed")


@dataclass
class LabFacts:
    """What the run's lab was: read from its plan and state when the drill collected it."""

    lab: str
    runtime: str
    router_versions: dict[str, str]  # per router implementation the lab ran (lab.routers): its version
    topology: str | None
    prefixes: int  # input: the topology's pools
    byoip: int  # input
    collector: str | None  # the node whose MRT dump is the vantage points' view
    vantage_points: dict[str, str]  # collector peer address -> router name
    speaker_addresses: dict[str, list[str]]  # speaker -> its link addresses (UPDATEs on the wire from it)
    observer: str | None  # the incident graph's peer (role peer)
    # input: the MRAI values (s) of the routers' sessions, as the plan set them (None: an older record)
    mrai: list[int] | None = None
    # input: each router's implementation (lab.routers), as `up` ran it (None: an older record)
    implementations: dict[str, str] | None = None


@dataclass
class DrillState:
    """What the drill and its tasks did, with the controller's own times (lab clock)."""

    t0: float = 0.0
    speed: float = 1.0
    start: str = "00:00"
    # Real-time windows as played: label and incident offsets (start, end); their lab times
    # follow from t0, the speed and the windows (controller.drills.clock). Empty when the
    # drill has none or ran with them compressed.
    windows: list[dict[str, Any]] = field(default_factory=list)
    realtime: bool = True  # False: --no-realtime compressed the drill's windows too
    # prefix (CIDR) -> when the controller sent the API call that withdrew it
    withdrawn_by_task: dict[str, float] = field(default_factory=dict)
    withdrawn_by_api: dict[str, float] = field(default_factory=dict)  # the drill's own API steps
    bindings_removed: dict[str, list[str]] = field(default_factory=dict)  # prefix -> services removed
    # how -> prefixes the controller asked the API to restore that way (dashboard, revert, config_push)
    restore_requests: dict[str, list[str]] = field(default_factory=dict)
    restore_times: dict[str, float] = field(default_factory=dict)  # prefix -> when the controller restored it
    dashboard_refused: int = 0
    dashboard_customers: int = 0  # customers who opened the dashboard (the drill's choice, seeded)
    byoip_customers: int = 0  # input: BYOIP customers in the seeded inventory
    owners: dict[str, str] = field(default_factory=dict)  # affected prefix -> its account (from the API)
    marks: list[dict[str, Any]] = field(default_factory=list)  # steps as they ran: t, incident, label
    detection: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # per task: cycles, errors
    captures: dict[str, list[str]] = field(default_factory=dict)  # node -> its capture files in captures/
    plans_built: int = 0  # lab plans built from the record during the run, in the drill's process
    guardrails: dict[str, Any] = field(default_factory=dict)  # input: as the drill put them (lab-second windows)
    # controller: the task's requests the change pipeline held (t, change, guardrail, prefixes)
    held: list[dict[str, Any]] = field(default_factory=list)
    # controller: what the pipeline recorded by the drill's end (held changes per guardrail, breaker trips)
    pipeline: dict[str, Any] = field(default_factory=dict)
    snapshot_restores: list[dict[str, Any]] = field(default_factory=list)  # t, snapshot, change, prefixes
    # A team's automation (exec tasks, controller.drills.automation):
    deletion_requests: list[str] = field(default_factory=list)  # input: prefixes the drill had customers flag
    asked: dict[str, list[str]] = field(default_factory=dict)  # input: per task, the prefixes it was asked to touch
    automation: list[dict[str, Any]] = field(default_factory=list)  # each run: exit code, seconds, killed, stderr
    # controller, from the API's records: per task, its token's changes and the 403s its scope got
    automation_api: dict[str, dict[str, Any]] = field(default_factory=dict)

    def clock(self) -> DrillClock:
        """The clock the drill played: its speed, its windows as played, its start."""
        return DrillClock(self.speed, [Window(w["start"], w["end"], w["label"]) for w in self.windows], start=self.start)

    def affected(self) -> dict[str, float]:
        """Every prefix the drill withdrew (task or API step), with the controller's time."""
        return {**self.withdrawn_by_api, **self.withdrawn_by_task}


@dataclass
class RunRecord:
    lab: LabFacts | None
    state: DrillState
    outcome: str = "completed"
    error: str | None = None  # why a run that did not complete ended

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        d = json.loads(text)
        return cls(LabFacts(**_lab_facts(d["lab"])) if d.get("lab") else None, DrillState(**d["state"]),
                   d.get("outcome", "completed"), d.get("error"))


@dataclass(frozen=True)
class RunDir:
    path: Path

    # written by the runner
    @property
    def drill(self) -> Path:
        return self.path / "drill.json"  # the drill as run (with the speed it ran at)

    @property
    def events(self) -> Path:
        return self.path / "drill-events.jsonl"

    @property
    def samples(self) -> Path:
        return self.path / "drill-samples.jsonl"

    @property
    def bindings_before(self) -> Path:
        return self.path / "bindings-before.json"

    @property
    def bindings_after(self) -> Path:
        return self.path / "bindings-after.json"  # exec drills: the bindings when the drill ended

    @property
    def owners(self) -> Path:
        return self.path / "owners.json"  # exec drills: every prefix's account (input, the inventory's)

    @property
    def record_file(self) -> Path:
        return self.path / "lab.json"

    @property
    def observe(self) -> Path:
        return self.path / "observe"  # the lab's own observations (probes, kernel samples), copied

    @property
    def probes(self) -> Path:
        return self.observe / "probes.jsonl"

    @property
    def stage_probes(self) -> Path:
        return self.observe / "stage-probes.jsonl"  # the staged rollout's own probes (controller.dataplane)

    @property
    def faults(self) -> Path:
        return self.path / "faults.jsonl"

    @property
    def captures(self) -> Path:
        return self.path / "captures"

    @property
    def capture(self) -> Path:
        return self.path / "capture.pcapng"

    @property
    def topology(self) -> Path:
        return self.path / "topology.yaml"  # only when the drill overrides the topology's timers

    def mrt(self, node: str) -> Path:
        return self.path / "mrt" / f"{node}.mrt"

    # written by analysis and the report
    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    # the record
    def write_record(self, record: RunRecord) -> None:
        tmp = self.record_file.with_suffix(".tmp")
        tmp.write_text(record.to_json())
        tmp.replace(self.record_file)

    def record(self) -> RunRecord:
        try:
            return RunRecord.from_json(self.record_file.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{self.path} is not a drill run directory: it has no {self.record_file.name}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise RunDirError(f"{self.record_file}: not a run record this version can read ({e})") from None

    def collector_mrt(self, record: RunRecord) -> Path | None:
        if record.lab is None or record.lab.collector is None:
            return None
        p = self.mrt(record.lab.collector)
        return p if p.exists() else None


def _lab_facts(d: dict[str, Any]) -> dict[str, Any]:
    """A record's lab facts; a record written before routers had implementations says
    ``frr_version`` (every router was FRR then)."""
    if "frr_version" in d:
        d = {k: v for k, v in d.items() if k != "frr_version"} | {"router_versions": {"frr": d["frr_version"]}}
    return d


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file the lab wrote. Only a last line cut short (a writer that was still
    writing) is tolerated; a bad line anywhere else is an error naming the file and line."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            if i == len(lines) - 1:
                break
            raise RunDirError(f"{path}:{i + 1}: not JSON ({e})") from None
    return out


class RunDirError(BgplabError):
    """A run directory that is missing a file or holds one this version cannot read."""

    exit_code = 2
