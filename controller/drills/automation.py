"""A team's own automation as a drill task (``kind: exec``): a command, in any language,
pointed at the lab's Addressing API with a token of the drill's scope.

The runner only starts, watches and ends the command; what it did is read afterwards from
the API's own records (the changes its token made, the requests its scope refused) and,
for the grade, from the network (controller.drills.grading.automation_figures).

Each run:
- runs as the unprivileged system user ``AUTOMATION_USER`` (made by ``scripts/bootstrap``),
  with no supplementary group, so that its token's scope holds for code that does not
  cooperate: the lab's directory (its state, admin token and inventory) is closed to it, and
  entering a namespace or talking to the Docker engine needs privileges it has not. A drill
  may say ``run_as: root``; the report then says so at its top;
- is its own process group (``start_new_session``), marked with the lab (``bgplab down``
  ends what a drill left, by that mark);
- gets a clean environment: ``PATH``, a ``HOME`` of its own under the run directory,
  ``LANG``, ``BGPLAB_API_URL``, ``BGPLAB_API_TOKEN``, ``BGPLAB_LAB``, ``BGPLAB_DRILL``,
  ``BGPLAB_TASK`` and the drill's ``env``; nothing of the controller's own;
- writes its stdout and stderr to ``automation/<task>-<n>.out`` and ``.err`` in the run
  directory;
- is ended past its ``limit`` (lab seconds): SIGTERM to its group, SIGKILL ``grace`` later.
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from controller.client import ApiClient
from controller.drills.model import ExecTask, parse_duration
from controller.drills.rundir import DrillState
from lab.errors import BgplabError
from lab.procs import MARK

# The system user a team's automation runs as (scripts/bootstrap creates it).
AUTOMATION_USER = "bgplab-automation"
AUTOMATION_PATH = "/usr/local/bin:/usr/bin:/bin"

Log = Callable[..., None]
Clock = Callable[[], float]
STDERR_TAIL = 2000  # characters of a failed run's stderr kept in the record and the report


def automation_account() -> pwd.struct_passwd:
    """The unprivileged user, or an error saying how to get it."""
    try:
        return pwd.getpwnam(AUTOMATION_USER)
    except KeyError:
        raise BgplabError(f"a team's automation runs as the system user '{AUTOMATION_USER}', and this machine "
                          "has none: run scripts/bootstrap (make setup) to create it, or give the task "
                          "run_as: root") from None


def automation_env(lab: str, home: Path, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of an automation's run: nothing of the controller's own."""
    return {**extra, "PATH": AUTOMATION_PATH, "HOME": str(home), "LANG": os.environ.get("LANG") or "C.UTF-8",
            MARK: lab}


@dataclass
class ExecContext:
    """What a live drill gives its exec tasks (none in the mechanism alone: no lab to point at)."""

    lab: str
    url: str
    drill: str
    out_dir: Path  # the run directory's automation/
    cwd: Path  # where a command runs: the drill file's directory, or the caller's for --automation
    command: str | None = None  # --automation: replaces every exec task's command


@dataclass
class Run:
    n: int
    proc: subprocess.Popen
    started: float  # lab clock
    out: Path
    err: Path
    term_at: float | None = None  # SIGTERM sent (limit, or the task stopped)
    reason: str | None = None  # "limit" | "stopped"


class ExecRunner:
    """One exec task: its runs, on the drill's incident clock (``Mechanism.advance`` calls
    ``poll`` on every tick and ``cycle`` when a run is due)."""

    def __init__(self, name: str, spec: ExecTask, api: ApiClient, st: DrillState, log: Log, clock: Clock,
                 context: ExecContext | None = None):
        if context is None:
            raise BgplabError(f"task '{name}' runs a command (kind exec) against a live lab's API; the mechanism "
                              "alone (bgplab drill mechanism, the sensitivity table) has none to give it")
        self.name, self.spec, self.api, self.st, self.log, self.clock = name, spec, api, st, log, clock
        self.ctx = context
        self.token: str | None = None  # set by the mechanism (a token of the task's scope)
        self.actor: str | None = None  # the audit log's name for that token
        self.running = False
        self.next_cycle = float("inf")
        self.current: Run | None = None
        self.runs = 0
        self.skipped = 0  # scheduled runs skipped because the previous one was still going
        self.failed = 0  # runs that exited non-zero, could not start, or were ended at their limit
        self.limit = parse_duration(spec.limit)
        self.grace = parse_duration(spec.grace)
        # Looked up before anything runs: a drill whose automation cannot be confined says so at once.
        self.user = automation_account() if spec.run_as == "automation" else None

    @property
    def argv(self) -> list[str] | str:
        return self.ctx.command if self.ctx.command is not None else self.spec.command

    def start(self, now_incident: float) -> None:
        """The task starts: what it is asked to touch is fixed now (input), its first run is due."""
        if self.spec.asked == "pending_delete":
            asked = [p["cidr"] for p in self.api.call("GET", "/v1/prefixes", params={"pending_delete": "true"})["result"]]
        else:
            asked = []
        self.st.asked[self.name] = sorted(set(self.st.asked.get(self.name, [])) | set(asked))
        self.running = True
        self.next_cycle = now_incident

    def stop(self) -> None:
        """The drill stops the task: no further runs; a run still going is ended (SIGTERM, then
        SIGKILL ``grace`` later), as an operator stopping a service would."""
        self.running = bool(self.current)
        self.next_cycle = float("inf")
        if self.current is not None and self.current.term_at is None:
            self._terminate(self.current, "stopped")

    def due(self, now_incident: float) -> bool:
        return self.running and now_incident >= self.next_cycle

    def counts(self) -> dict[str, int]:
        return {"runs": self.runs, "failed": self.failed, "skipped": self.skipped}

    # -- runs ----------------------------------------------------------------------

    def cycle(self) -> None:
        if self.spec.mode == "every":
            self.next_cycle += parse_duration(self.spec.every)
        else:
            self.next_cycle = float("inf")
        if self.current is not None:
            self.skipped += 1
            self.log("automation_skipped", task=self.name, run=self.current.n, why="the previous run is still going")
            return
        self._launch()

    def _launch(self) -> None:
        self.runs += 1
        n = self.runs
        self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
        out, err = self.ctx.out_dir / f"{self.name}-{n}.out", self.ctx.out_dir / f"{self.name}-{n}.err"
        home = self.ctx.out_dir / f"home-{self.name}"
        home.mkdir(mode=0o700, exist_ok=True)
        ids: dict[str, Any] = {}
        if self.user is not None:
            os.chown(home, self.user.pw_uid, self.user.pw_gid)
            ids = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [], "umask": 0o077}
        env = automation_env(self.ctx.lab, home, {
            **self.spec.env, "BGPLAB_API_URL": self.ctx.url, "BGPLAB_API_TOKEN": self.token or "",
            "BGPLAB_LAB": self.ctx.lab, "BGPLAB_DRILL": self.ctx.drill, "BGPLAB_TASK": self.name})
        argv = self.argv
        started = self.clock()
        try:
            # Its output files are opened here, by the controller: the run writes to them through
            # the descriptors it is handed, and they are collected whoever it runs as.
            with open(out, "wb") as fo, open(err, "wb") as fe:
                proc = subprocess.Popen(argv, shell=isinstance(argv, str), cwd=self.ctx.cwd, env=env,
                                        stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, start_new_session=True,
                                        **ids)
        except OSError as e:
            # A command that cannot start is a failed run, reported as such (not the drill's error).
            who = f" as user {AUTOMATION_USER}" if self.user is not None else ""
            hint = (f"; {AUTOMATION_USER} must be able to reach {self.ctx.cwd} and the command"
                    if self.user is not None and isinstance(e, PermissionError) else "")
            err.write_text(f"bgplab: could not start {argv!r}{who} in {self.ctx.cwd}: {e}{hint}\n")
            self._record(Run(n, None, started, out, err), exit_code=None, error=str(e))  # type: ignore[arg-type]
            if self.spec.mode != "every":
                self.running = False
            return
        self.current = Run(n, proc, started, out, err)
        self.log("automation_started", task=self.name, run=n, pid=proc.pid,
                 command=argv if isinstance(argv, str) else shlex.join(argv))

    def poll(self) -> None:
        """Cheap (one waitpid): a finished run is recorded; a run past its limit is ended."""
        run = self.current
        if run is None:
            return
        code = run.proc.poll()
        now = self.clock()
        if code is not None:
            self.current = None
            self._record(run, exit_code=code)
            if self.spec.mode != "every" or self.next_cycle == float("inf"):
                self.running = False
            return
        if run.term_at is None and now - run.started > self.limit:
            self._terminate(run, "limit")
        elif run.term_at is not None and now - run.term_at > self.grace:
            self._signal(run, signal.SIGKILL)

    def _terminate(self, run: Run, reason: str) -> None:
        run.term_at, run.reason = self.clock(), reason
        self.log("automation_ending", task=self.name, run=run.n, why=reason,
                 after_s=round(run.term_at - run.started, 2))
        self._signal(run, signal.SIGTERM)

    @staticmethod
    def _signal(run: Run, sig: int) -> None:
        try:
            os.killpg(run.proc.pid, sig)  # its own group: the command and whatever it started
        except ProcessLookupError:
            pass

    def _record(self, run: Run, exit_code: int | None, error: str | None = None) -> None:
        ended = self.clock()
        stderr = run.err.read_text(errors="replace") if run.err.exists() else ""
        killed = run.reason == "limit"
        stopped = run.reason == "stopped"
        ok = exit_code == 0 and not killed
        if stopped and self.spec.mode == "service":
            ok = exit_code is not None and (exit_code == 0 or exit_code == -signal.SIGTERM)  # a service ends on SIGTERM
        rec = {"task": self.name, "run": run.n, "started": run.started, "ended": ended,
               "seconds": round(ended - run.started, 3), "exit_code": exit_code, "killed_at_limit": killed,
               "stopped": stopped, "ok": ok, "error": error,
               "stdout": str(run.out.relative_to(self.ctx.out_dir.parent)),
               "stderr": str(run.err.relative_to(self.ctx.out_dir.parent)),
               "stderr_tail": stderr[-STDERR_TAIL:] if not ok else ""}
        self.st.automation.append(rec)
        self.failed += not ok
        self.log("automation_ended", **{k: v for k, v in rec.items() if k != "stderr_tail"})

    def drill_over(self) -> None:
        """The drill's last step has passed: a service is stopped, a schedule runs no more; a
        run still going may finish within its limit (the drill waits for it)."""
        if self.spec.mode == "service" and self.running:
            self.stop()
        elif self.spec.mode == "every":
            self.next_cycle = float("inf")
            self.running = self.current is not None

    def shutdown(self) -> None:
        """The drill is over (or failed): nothing of this task may outlive it."""
        self.next_cycle = float("inf")
        run = self.current
        if run is None:
            self.running = False
            return
        if run.term_at is None:
            self._terminate(run, "stopped")
        try:
            run.proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self._signal(run, signal.SIGKILL)
            run.proc.wait(timeout=10)
        self.poll()
        self.running = False
