"""One exception base; subclasses where a caller needs to tell them apart."""

from __future__ import annotations


class BgplabError(Exception):
    """Base of every error bgplab raises on purpose. The message is for a user."""

    exit_code = 1


class TopologyError(BgplabError):
    """A topology file is invalid. Carries every problem found, each with its path."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} {noun}:\n{lines}")


class UsageError(BgplabError, ValueError):
    """Bad arguments that are not part of a file: a lab name, a node name.

    Also a ValueError, so the same check serves inside pydantic validators."""

    exit_code = 2


class LabExists(BgplabError):
    """`up` of a lab name that is already up (or half up)."""


class LabNotFound(BgplabError):
    """A command named a lab that is not up."""


class ExecError(BgplabError):
    """A command run by the lab failed; the message has argv, stdout and stderr."""

    def __init__(self, argv: list[str], rc: int | None, out: str, err: str, where: str = ""):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        place = f" in {where}" if where else ""
        status = "timed out" if rc is None else f"exited {rc}"
        super().__init__(
            f"command{place} {status}: {' '.join(argv)}\n"
            f"  stdout: {out.strip()[-2000:] or '(empty)'}\n"
            f"  stderr: {err.strip()[-2000:] or '(empty)'}"
        )


class ConfigError(BgplabError):
    """A rendered daemon config was rejected by the daemon's own dry run."""


class DaemonError(BgplabError):
    """A daemon did not start, or died."""


class DaemonBusy(DaemonError):
    """A daemon took longer than its question's timeout to answer: alive, busy (a
    single-threaded router converging); a wait may ask again."""


class WaitTimeout(BgplabError):
    """A wait on some state gave up; the message says what it waited for and what it saw."""


class SpeakerError(BgplabError):
    """The ExaBGP channel: a command got `error`, no acknowledgement, or the speaker is gone."""


class UpFailed(BgplabError):
    """`up` failed at a step; everything it made was removed (or the teardown problems are listed)."""

    def __init__(self, lab: str, step: str, cause: BaseException, teardown_errors: list[str]):
        self.lab, self.step, self.cause, self.teardown_errors = lab, step, cause, teardown_errors
        msg = f"lab '{lab}' did not come up: {step} failed: {cause}"
        if teardown_errors:
            msg += "\nand removing what was made also failed:\n" + "\n".join(
                f"  {e}" for e in teardown_errors
            )
        else:
            msg += "\neverything this attempt made has been removed."
        super().__init__(msg)
        self.exit_code = getattr(cause, "exit_code", 1)


class TeardownError(BgplabError):
    """`down` ran every step; these failed."""

    def __init__(self, lab: str, errors: list[str]):
        self.lab, self.errors = lab, errors
        super().__init__(f"down of lab '{lab}' left problems:\n" + "\n".join(f"  {e}" for e in errors))
