"""The sampler asks an observer no more often than its answers can be afforded
(controller/observe/sampler.py DUTY): a question that walks a million-prefix table is asked
fifty times less often than it takes, and the answer in between says how old it is."""

from __future__ import annotations

import time
from pathlib import Path

from controller.observe.sampler import DUTY, Sampler


class SlowTable:
    """An observer whose table count takes ``cost`` seconds (FRR's statistics walk at scale)."""

    poll_interval = 0.1

    def __init__(self, cost: float):
        self.cost, self.asked = cost, 0

    def received(self, node_dir: Path) -> dict[str, int]:
        self.asked += 1
        time.sleep(self.cost)
        return {"ipv4": 1000 * self.asked, "ipv6": 0}


def test_a_costly_question_is_asked_after_fifty_times_its_cost(tmp_path: Path) -> None:
    slow, quick = SlowTable(0.04), SlowTable(0.0)
    sampler = Sampler({}, frozenset(), {"obs": (slow, tmp_path, []), "fast": (quick, tmp_path, [])}, tmp_path)
    first = sampler._observer_counts()
    assert first["obs"] == {"ipv4": 1000, "ipv6": 0, "from": "table"} and slow.asked == 1
    time.sleep(0.15)  # past the poll interval, well within 0.04 / DUTY = 2 s
    again = sampler._observer_counts()
    assert slow.asked == 1 and again["obs"]["ipv4"] == 1000 and again["obs"]["age_s"] >= 0.15
    assert quick.asked == 2  # a cheap question keeps its implementation's pace
    asked_at, _, cost = sampler.answers["obs"]  # what the question cost, as the sampler measured it
    time.sleep(max(0.0, asked_at + cost / DUTY + 0.05 - time.monotonic()))
    assert sampler._observer_counts()["obs"]["ipv4"] == 2000 and slow.asked == 2
