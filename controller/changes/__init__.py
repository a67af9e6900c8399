"""The change pipeline: configured state -> guardrails -> operational state (speakers, edge).

- ``pipeline``: ``Changes``, one lab's pipeline: a change, its diff, the operators' decisions,
  the audit log;
- ``kinds``: the changes an API write can make, one typed record each;
- ``records``: the diff, the delta, operational state, a change's stored record;
- ``rules``: the guardrails, one function each;
- ``stages``: the staged rollout; ``snapshots``: snapshots and restore.
"""

from controller.changes.kinds import (AddBinding, BgpStatus, Change, ConfigPush, DeleteBinding, DeletePrefix,
                                      Restore, StageRollback)
from controller.changes.pipeline import Changes, Health, OnChange, OnStage
from controller.changes.records import STATUSES, Delta, Diff, Held, Outcome, PropagationFailed, Recent, State
from controller.changes.rules import GUARDRAILS
from controller.guardrails import Guardrails

__all__ = ["AddBinding", "BgpStatus", "Change", "Changes", "ConfigPush", "DeleteBinding", "DeletePrefix", "Delta",
           "Diff", "GUARDRAILS", "Guardrails", "Health", "Held", "OnChange", "OnStage", "Outcome",
           "PropagationFailed", "Recent", "Restore", "STATUSES", "StageRollback", "State"]
